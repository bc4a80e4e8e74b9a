// report.md artifacts are rendered with marked and sanitised with DOMPurify: the text
// comes from the server, but a model's name or a trial spec can end up in it.
import { marked } from "marked";
import DOMPurify from "dompurify";

export function renderMarkdown(md: string): HTMLElement {
  const div = document.createElement("div");
  div.className = "markdown";
  const html = marked.parse(md, { async: false, gfm: true }) as string;
  div.innerHTML = DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
  return div;
}
