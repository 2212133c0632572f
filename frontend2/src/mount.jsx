import { createRoot } from "react-dom/client";
import { ErrorBoundary } from "./components/ErrorBoundary";

/**
 * Mounts widgets into placeholders such as
 *   <div data-widget="training-logs" data-run-id="42"></div>
 *   <div data-widget="model-performance" data-deployment="price-direction"></div>
 * `registry` maps a data-widget name to [display name, (element dataset) => React element].
 * Each placeholder is mounted once; returns the roots (tests unmount them).
 */
export function mountWidgets(registry, root = document) {
  const roots = [];
  for (const el of root.querySelectorAll("[data-widget]")) {
    const entry = registry[el.dataset.widget];
    if (!entry || el.dataset.mounted) continue;
    const [name, render] = entry;
    el.dataset.mounted = "true";
    el.classList.add("mlops");
    // Inside an admin change form, Enter in the widget's search box must not submit (and save) the form.
    el.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target instanceof HTMLInputElement) event.preventDefault();
    });
    const reactRoot = createRoot(el);
    reactRoot.render(<ErrorBoundary name={name}>{render(el.dataset)}</ErrorBoundary>);
    roots.push(reactRoot);
  }
  return roots;
}

export function onReady(fn) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn, { once: true });
  else fn();
}
