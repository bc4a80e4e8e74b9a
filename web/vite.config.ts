import { defineConfig } from "vite";

// The bundle is committed (web/dist) and embedded into `vht serve`; CI rebuilds it and
// checks `git diff --exit-code web/dist`, so the output must depend only on the sources:
// hashed file names, no source maps with absolute paths, no build timestamps.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` proxies the API to a running `vht serve` (or the mock, `npm run mock`).
    proxy: {
      "/api": process.env.VHT_API ?? "http://127.0.0.1:8080",
      "/metrics": process.env.VHT_API ?? "http://127.0.0.1:8080",
    },
  },
});
