import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Django serves the build from STATIC_URL (/static/) and reads dist/.vite/manifest.json to emit the
// <script>/<link> tags, so there is no separate frontend server in production.
export default defineConfig({
  plugins: [react()],
  base: "/static/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    manifest: true,
    rollupOptions: {
      input: {
        dashboard: "src/main.jsx",
        embed: "src/embed.jsx",
      },
    },
  },
  server: {
    // `npm run dev` next to `manage.py runserver`: API and WebSockets go to Django.
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.js"],
    include: ["src/**/*.test.{js,jsx}"],
    restoreMocks: true,
  },
});
