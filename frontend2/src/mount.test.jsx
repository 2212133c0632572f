import { act, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { mountWidgets } from "./mount";

let roots = [];
afterEach(() => {
  act(() => roots.forEach((r) => r.unmount()));
  roots = [];
  document.body.innerHTML = "";
});

function Echo({ data }) {
  return <p>run {data.runId}</p>;
}

describe("mounting widgets into placeholders", () => {
  it("mounts each placeholder once with its data attributes", () => {
    document.body.innerHTML = '<div data-widget="echo" data-run-id="42"></div><div data-widget="unknown"></div>';
    const registry = { echo: ["Echo", (data) => <Echo data={data} />] };
    act(() => {
      roots = mountWidgets(registry);
    });
    expect(screen.getByText("run 42")).toBeInTheDocument();
    expect(mountWidgets(registry)).toHaveLength(0);
    expect(document.querySelector("[data-widget=echo]")).toHaveClass("mlops");
  });

  it("shows a widget that fails to render instead of a blank box", () => {
    document.body.innerHTML = '<div data-widget="broken"></div>';
    const Broken = () => {
      throw new Error("bad data");
    };
    const original = console.error;
    console.error = () => {};
    try {
      act(() => {
        roots = mountWidgets({ broken: ["Broken widget", () => <Broken />] });
      });
    } finally {
      console.error = original;
    }
    expect(screen.getByRole("alert")).toHaveTextContent("Broken widget failed: bad data");
  });

  it("keeps Enter in a widget's text box from submitting a surrounding admin form", () => {
    document.body.innerHTML = '<form><div data-widget="search"></div></form>';
    act(() => {
      roots = mountWidgets({ search: ["Search", () => <input aria-label="q" />] });
    });
    const event = new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true });
    screen.getByLabelText("q").dispatchEvent(event);
    expect(event.defaultPrevented).toBe(true);
  });
});
