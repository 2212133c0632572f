import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { fakeFetch, fakeSockets } from "../../test/fakes";
import { TrainingLogsWidget } from "./TrainingLogsWidget";

const log = (seq, message = `line ${seq}`, level = "INFO") => ({ type: "run.log", seq, level, message, ts: "2025-01-01T10:00:00Z" });
const shownSeqs = () => [...document.querySelectorAll("[data-seq]")].map((el) => Number(el.dataset.seq));
const RUNS = [
  { id: 7, experiment: "price-direction", framework: "torch", model_type: "mlp", status: "succeeded" },
  { id: 9, experiment: "returns", framework: "keras", model_type: "lstm", status: "running" },
];

function setup(props = {}, routes = {}) {
  const ws = fakeSockets();
  const fetchJson = fakeFetch({ "/api/v1/runs/*": [], ...routes });
  const utils = render(<TrainingLogsWidget WebSocketImpl={ws.FakeWebSocket} fetchJson={fetchJson} gapGraceMs={30} {...props} />);
  return { ...utils, ws, fetchJson };
}

describe("TrainingLogsWidget", () => {
  it("follows the newest run and shows its lines, progress and metric curves as they stream", async () => {
    const { ws } = setup({ runs: RUNS });
    expect(ws.last().url).toMatch(/\/ws\/training\/runs\/9\/\?after=0$/);
    act(() => {
      ws.last().open();
      ws.last().receive(log(1, "Epoch 1 started"));
      ws.last().receive({ type: "run.progress", epoch: 1, total_epochs: 4, percent: 25, eta_seconds: 90, metrics: { loss: 0.9, val_loss: 1.1 } });
      ws.last().receive({ type: "run.progress", epoch: 2, total_epochs: 4, percent: 50, eta_seconds: 60, metrics: { loss: 0.7, val_loss: 0.9 } });
    });
    expect(screen.getByText("Epoch 1 started")).toBeInTheDocument();
    expect(screen.getByRole("progressbar", { name: "Log view: run 9 progress" })).toHaveAttribute("aria-valuenow", "50");
    expect(screen.getByText(/Epoch 2 of 4 · 50% · ETA 1m 00s/)).toBeInTheDocument();
    const chart = screen.getByRole("img", { name: "Loss by epoch" });
    expect(chart.querySelectorAll("path[data-series]")).toHaveLength(2);
    expect(screen.getByText("Live")).toBeInTheDocument();
  });

  it("backfills from the last line it saw after the connection drops: no gap, no duplicate", async () => {
    const { ws } = setup({ runId: 5 });
    act(() => {
      ws.last().open();
      [1, 2, 3].forEach((s) => ws.last().receive(log(s)));
      ws.last().drop();
    });
    expect(screen.getByText("Connection lost, reconnecting…")).toBeInTheDocument();
    await waitFor(() => expect(ws.sockets).toHaveLength(2));
    expect(ws.last().url).toMatch(/\/ws\/training\/runs\/5\/\?after=3$/);
    act(() => {
      ws.last().open();
      // The server replays 4-5; the live group then repeats 5 before sending 6.
      [4, 5, 5, 6].forEach((s) => ws.last().receive(log(s)));
    });
    expect(shownSeqs()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("reconnects to fill a hole in the middle of a stream", async () => {
    const { ws } = setup({ runId: 5 });
    act(() => {
      ws.last().open();
      [1, 2, 4].forEach((s) => ws.last().receive(log(s)));
    });
    expect(shownSeqs()).toEqual([1, 2]);
    await waitFor(() => expect(ws.sockets).toHaveLength(2));
    expect(ws.sockets[0].closedByClient).toBe(true);
    expect(ws.last().url).toMatch(/after=2$/);
    act(() => {
      ws.last().open();
      [3, 4].forEach((s) => ws.last().receive(log(s)));
    });
    expect(shownSeqs()).toEqual([1, 2, 3, 4]);
  });

  it("starts over from the first line when another run is picked", async () => {
    const user = userEvent.setup();
    const { ws } = setup({ runs: RUNS });
    act(() => {
      ws.last().open();
      ws.last().receive(log(1, "from run 9"));
    });
    await user.selectOptions(screen.getByLabelText("Run"), "7");
    expect(ws.sockets[0].closedByClient).toBe(true);
    expect(ws.last().url).toMatch(/\/runs\/7\/\?after=0$/);
    expect(screen.queryByText("from run 9")).not.toBeInTheDocument();
  });

  it("filters by level and by text", async () => {
    const user = userEvent.setup();
    const { ws } = setup({ runId: 1 });
    act(() => {
      ws.last().open();
      ws.last().receive(log(1, "Epoch 1 done"));
      ws.last().receive(log(2, "loss is NaN", "WARNING"));
      ws.last().receive(log(3, "Traceback", "ERROR"));
    });
    await user.click(screen.getByRole("button", { name: "Info" }));
    expect(screen.getByRole("button", { name: "Info" })).toHaveAttribute("aria-pressed", "false");
    expect(shownSeqs()).toEqual([2, 3]);
    await user.type(screen.getByLabelText("Search"), "trace");
    expect(shownSeqs()).toEqual([3]);
    await user.clear(screen.getByLabelText("Search"));
    await user.type(screen.getByLabelText("Search"), "nothing like this");
    expect(screen.getByText("No line matches the filter.")).toBeInTheDocument();
  });

  it("pauses auto-scroll when the reader scrolls up and resumes on request", async () => {
    const user = userEvent.setup();
    const { ws } = setup({ runId: 1 });
    act(() => {
      ws.last().open();
      ws.last().receive(log(1));
    });
    const pane = screen.getByRole("log");
    // The lines are a list of list items inside the log (role="log" on the <ol> itself hid them).
    expect(within(within(pane).getByRole("list")).getAllByRole("listitem")).toHaveLength(1);
    Object.defineProperty(pane, "scrollHeight", { configurable: true, value: 1000 });
    Object.defineProperty(pane, "clientHeight", { configurable: true, value: 300 });
    act(() => {
      ws.last().receive(log(2));
    });
    expect(pane.scrollTop).toBe(1000);
    pane.scrollTop = 200;
    act(() => pane.dispatchEvent(new Event("scroll")));
    act(() => {
      ws.last().receive(log(3));
      ws.last().receive(log(4));
    });
    expect(pane.scrollTop).toBe(200);
    const resume = screen.getByRole("button", { name: /Auto-scroll paused · 2 new · Jump to latest/ });
    await user.click(resume);
    expect(pane.scrollTop).toBe(1000);
    expect(screen.queryByRole("button", { name: /Jump to latest/ })).not.toBeInTheDocument();
  });

  it("says so when there is no run to show", () => {
    setup({ runs: [] });
    expect(screen.getByText(/No training runs yet/)).toBeInTheDocument();
  });

  it("shows the error and retries when the runs cannot be loaded", async () => {
    const user = userEvent.setup();
    let fail = true;
    setup({}, {
      "/api/v1/dashboard/summary": () => (fail ? new Error("The server cannot be reached.") : { recent_runs: RUNS }),
    });
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The server cannot be reached.");
    fail = false;
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("option", { name: /Follow the newest run \(#9\)/ })).toBeInTheDocument();
  });

  it("stops reconnecting once the run has finished and the server closed the stream", async () => {
    const { ws } = setup({ runId: 2 });
    act(() => {
      ws.last().open();
      ws.last().receive(log(1, "done"));
      ws.last().receive({ type: "run.status", status: "succeeded" });
      ws.last().drop(1000);
    });
    await waitFor(() => expect(screen.getByText("Finished", { selector: ".mlops-badge" })).toBeInTheDocument());
    await new Promise((r) => setTimeout(r, 700));
    expect(ws.sockets).toHaveLength(1);
  });
});
