import { act, render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { fakeFetch, fakeSockets } from "../test/fakes";
import { LivePerformanceWidget } from "./embeddable";

describe("the embedded performance widget", () => {
  it("reloads its series when its deployment is pushed, and only then", async () => {
    const ws = fakeSockets();
    const fetchJson = fakeFetch({ "/api/v1/monitoring/deployments/*": { versions: [] } });
    render(<LivePerformanceWidget deployment="price-direction" WebSocketImpl={ws.FakeWebSocket} fetchJson={fetchJson} />);
    await screen.findByText("This deployment serves no model version yet.");
    const loads = fetchJson.calls.length;
    expect(ws.last().url).toMatch(/\/ws\/dashboard\/$/);
    act(() => {
      ws.last().open();
      ws.last().receive({ type: "deployment", deployment: { name: "other" } });
    });
    expect(fetchJson.calls.length).toBe(loads);
    act(() => ws.last().receive({ type: "deployment", deployment: { name: "price-direction" } }));
    await waitFor(() => expect(fetchJson.calls.length).toBe(loads + 2));
  });
});
