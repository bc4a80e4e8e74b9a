// report.md artifacts are rendered with marked and sanitised with DOMPurify: the text
// comes from the server, but a model's name or a trial spec can end up in it.
import { marked } from "marked";
import DOMPurify from "dompurify";

const ABSOLUTE = /^(https?:|data:|blob:|#|\/)/i;

// Relative image and link targets in a report name sibling artifacts (plots, tables).
// They are moved to data-artifact while sanitising (in DOMPurify's inert document), so
// the browser never requests them relative to the page; the caller resolves them.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  const el = node as Element;
  if (el.tagName === "IMG") {
    const src = el.getAttribute("src") ?? "";
    if (src && !ABSOLUTE.test(src)) {
      el.setAttribute("data-artifact", src);
      el.removeAttribute("src");
    }
  } else if (el.tagName === "A") {
    const href = el.getAttribute("href") ?? "";
    if (href && !ABSOLUTE.test(href) && !/^mailto:/i.test(href)) {
      el.setAttribute("data-artifact", href);
      el.setAttribute("href", "#");
    }
  }
});

/**
 * Render Markdown; `resolve` turns a relative image into a URL (e.g. a blob URL of an
 * artifact fetched with the token) and `open` handles a click on a relative link.
 */
export function renderMarkdown(
  md: string,
  resolve?: (name: string) => Promise<string>,
  open?: (name: string) => void,
): HTMLElement {
  const div = document.createElement("div");
  div.className = "markdown";
  const html = marked.parse(md, { async: false, gfm: true }) as string;
  div.innerHTML = DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
  for (const img of Array.from(div.querySelectorAll<HTMLImageElement>("img[data-artifact]"))) {
    const name = img.getAttribute("data-artifact") ?? "";
    if (resolve) resolve(name).then((url) => (img.src = url)).catch(() => img.replaceWith(document.createTextNode(`[${img.alt || name}: not available]`)));
    else img.replaceWith(document.createTextNode(`[${img.alt || name}]`));
  }
  for (const a of Array.from(div.querySelectorAll<HTMLAnchorElement>("a[data-artifact]"))) {
    const name = a.getAttribute("data-artifact") ?? "";
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      open?.(name);
    });
  }
  return div;
}
