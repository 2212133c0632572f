import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { Chart } from "./Chart";

const xTicks = (svg) => [...svg.querySelectorAll("text.mlops-chart__tick--x")].map((t) => t.textContent);

describe("Chart", () => {
  it("draws one path per line series with a labelled legend showing the last value", () => {
    render(<Chart title="Loss" series={[{ name: "loss", points: [{ x: 1, y: 0.9 }, { x: 2, y: 0.5 }] }, { name: "val_loss", points: [{ x: 1, y: 1 }] }]} />);
    const svg = screen.getByRole("img", { name: "Loss" });
    expect(svg.querySelectorAll("path[data-series]")).toHaveLength(2);
    expect(screen.getByRole("list", { name: "Loss legend" })).toHaveTextContent("loss 0.5val_loss 1");
  });

  it("labels whole-number axes once per number", () => {
    render(<Chart title="By epoch" xIntegers xFormat={String} series={[{ name: "a", points: [{ x: 1, y: 1 }, { x: 2, y: 2 }] }]} />);
    expect(xTicks(screen.getByRole("img", { name: "By epoch" }))).toEqual(["1", "2"]);
  });

  it("draws bars from zero for bar series", () => {
    render(<Chart title="Volume" series={[{ name: "v1", type: "bar", points: [{ x: 0, y: 3 }, { x: 1, y: 0 }, { x: 2, y: 5 }] }]} />);
    const bars = [...screen.getByRole("img", { name: "Volume" }).querySelectorAll("rect")];
    expect(bars).toHaveLength(3);
    expect(bars.map((b) => Number(b.getAttribute("height")) > 0)).toEqual([true, false, true]);
  });

  it("says when there is nothing to draw", () => {
    render(<Chart title="Empty" series={[{ name: "a", points: [] }]} emptyText="Nothing here." />);
    expect(screen.getByText("Nothing here.")).toBeInTheDocument();
    expect(screen.queryByRole("img")).not.toBeInTheDocument();
  });
});

describe("Chart gaps", () => {
  it("breaks a line where a bucket has no value and marks points left alone", () => {
    const points = [{ x: 0, y: 1 }, { x: 1, y: 2 }, { x: 2, y: null }, { x: 3, y: 3 }, { x: 4, y: null }, { x: 5, y: 2 }, { x: 6, y: 1 }];
    render(<Chart title="Gappy" series={[{ name: "a", points }]} />);
    const svg = screen.getByRole("img", { name: "Gappy" });
    const d = svg.querySelector("path[data-series=a]").getAttribute("d");
    expect(d.match(/M/g)).toHaveLength(3);
    expect(d.match(/L/g)).toHaveLength(2);
    expect(svg.querySelectorAll("circle")).toHaveLength(2); // the lonely point at x=3 and the last point
  });
});
