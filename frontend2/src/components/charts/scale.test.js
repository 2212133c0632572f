import { describe, expect, it } from "vitest";
import { formatNumber, formatPercent, linear, niceTicks } from "./scale";

describe("chart scales", () => {
  it("covers the data with round ticks", () => {
    expect(niceTicks(0.12, 0.87, 4)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(3, 3)).toEqual([2.6, 2.8, 3, 3.2, 3.4]);
    expect(niceTicks(0, 0)).toEqual([0, 0.5, 1]);
  });

  it("maps a domain onto a range", () => {
    expect(linear([0, 10], [100, 0])(2.5)).toBe(75);
  });

  it("formats numbers compactly", () => {
    expect(formatNumber(12345)).toBe("12k");
    expect(formatNumber(0.01234)).toBe("0.012");
    expect(formatPercent(0.5)).toBe("50%");
    expect(formatNumber(NaN)).toBe("—");
  });
});
