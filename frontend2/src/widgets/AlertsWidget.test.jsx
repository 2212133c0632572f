import { act, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { fakeFetch, fakeSockets } from "../test/fakes";
import { ALERTS_PATH, AlertsWidget, firingNow } from "./AlertsWidget";
import { MLOpsDashboard } from "./ML/MLOpsDashboard";

const event = (id, kind, extra = {}) => ({
  id,
  rule: "server errors",
  rule_id: 1,
  deployment: "price-direction",
  kind,
  alert_kind: "error_rate",
  value: kind === "firing" ? 0.0523 : null,
  threshold: 0.01,
  message: `Server error rate on price-direction: ${kind === "firing" ? "0.0523" : "no data"}`,
  started_at: "2026-01-05T10:02:00Z",
  created_at: `2026-01-05T10:${String(id).padStart(2, "0")}:00Z`,
  retrain_note: "",
  deliveries: [],
  ...extra,
});

describe("AlertsWidget", () => {
  it("lists the rules firing now and the recent events, and a push adds a resolution live", async () => {
    const ws = fakeSockets();
    const fetchJson = fakeFetch({
      [ALERTS_PATH]: {
        results: [
          event(5, "firing", { deliveries: [{ webhook: "ops", status: "delivered", attempts: 2, last_error: "HTTP 500" }] }),
          event(3, "firing", { id: 3, rule: "drift", rule_id: 2, message: "Feature drift: 0.4 PSI", retrain_note: "alert drift: retrain run 9 queued" }),
        ],
      },
    });
    render(<AlertsWidget fetchJson={fetchJson} WebSocketImpl={ws.FakeWebSocket} />);

    const firing = await screen.findByRole("list", { name: "Firing alerts" });
    expect(within(firing).getAllByRole("listitem").map((li) => li.dataset.rule)).toEqual(["server errors", "drift"]);
    expect(within(firing).getAllByRole("listitem")[0].textContent).toContain("0.0523 (threshold 0.01)");
    expect(screen.getByTestId("deliveries").textContent).toContain("ops: Delivered after 2 attempts");
    expect(screen.getByText("alert drift: retrain run 9 queued")).toBeTruthy();
    expect(ws.last().url).toMatch(/\/ws\/dashboard\/$/);

    act(() => ws.last().open());
    act(() => ws.last().receive({ type: "deployment", deployment: { name: "price-direction" } })); // not ours
    act(() => ws.last().receive({ type: "alert", alert: event(30, "resolved") }));
    await waitFor(() => expect(screen.getByRole("list", { name: "Firing alerts" }).children).toHaveLength(1));
    expect(within(screen.getByRole("list", { name: "Firing alerts" })).getByText("drift")).toBeTruthy();
    const kinds = [...document.querySelectorAll("[data-kind]")].map((li) => li.dataset.kind);
    expect(kinds).toEqual(["resolved", "firing", "firing"]);
    expect(fetchJson.calls).toHaveLength(1);
  });

  it("takes pushes from the dashboard's socket instead of opening its own, and says when nothing fires", async () => {
    const ws = fakeSockets();
    const fetchJson = fakeFetch({ [ALERTS_PATH]: { results: [] } });
    const { rerender } = render(<AlertsWidget fetchJson={fetchJson} WebSocketImpl={ws.FakeWebSocket} push={null} />);
    expect(await screen.findByText("No alert is firing.")).toBeTruthy();
    expect(ws.sockets).toHaveLength(0);

    rerender(<AlertsWidget fetchJson={fetchJson} WebSocketImpl={ws.FakeWebSocket} push={{ type: "alert", alert: event(7, "firing") }} />);
    const firing = await screen.findByRole("list", { name: "Firing alerts" });
    expect(within(firing).getByText("server errors")).toBeTruthy();
  });

  it("shows the error with a retry when the events cannot load", async () => {
    const fetchJson = fakeFetch({ [ALERTS_PATH]: new Error("The server cannot be reached.") });
    render(<AlertsWidget fetchJson={fetchJson} push={null} />);
    expect((await screen.findByRole("alert")).textContent).toContain("Could not load alerts: The server cannot be reached.");
  });

  it("counts a rule as firing only while its newest event is a firing one", () => {
    expect(firingNow([event(2, "firing"), event(4, "resolved")])).toEqual([]);
    expect(firingNow([event(6, "firing"), event(4, "resolved")]).map((e) => e.id)).toEqual([6]);
  });

  it("is mounted on the dashboard and shows an alert pushed on the dashboard's socket", async () => {
    const ws = fakeSockets();
    const fetchJson = fakeFetch({
      "/api/v1/me": { username: "ann", role: "Analyst", can_act: false },
      "/api/v1/dashboard/summary": { deployments: [], runs: [], recent_runs: [], studies: [] },
      [ALERTS_PATH]: { results: [] },
    });
    render(<MLOpsDashboard fetchJson={fetchJson} WebSocketImpl={ws.FakeWebSocket} />);
    expect(await screen.findByText("No alert is firing.")).toBeTruthy();
    const sockets = ws.sockets.filter((s) => s.url.endsWith("/ws/dashboard/"));
    expect(sockets).toHaveLength(1); // the widget listens through the page's socket
    act(() => sockets[0].open());
    act(() => sockets[0].receive({ type: "alert", alert: event(9, "firing") }));
    const firing = await screen.findByRole("list", { name: "Firing alerts" });
    expect(within(firing).getByText("server errors")).toBeTruthy();

    // What fired while the socket was down is not replayed: a reconnect reloads the list.
    const loads = () => fetchJson.calls.filter((p) => p === ALERTS_PATH).length;
    expect(loads()).toBe(1);
    act(() => sockets[0].drop());
    await waitFor(() => expect(ws.sockets.filter((s) => s.url.endsWith("/ws/dashboard/"))).toHaveLength(2));
    act(() => ws.sockets.filter((s) => s.url.endsWith("/ws/dashboard/"))[1].open());
    await waitFor(() => expect(loads()).toBe(2));
  });
});
