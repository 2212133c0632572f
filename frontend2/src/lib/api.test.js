import { describe, expect, it } from "vitest";
import { ApiError, csrfToken, requestJson, wsUrl } from "./api";

const reply = (status, body) => () =>
  Promise.resolve({ ok: status < 400, status, text: () => Promise.resolve(typeof body === "string" ? body : JSON.stringify(body)) });

describe("requestJson", () => {
  it("sends writes with Django's CSRF header from the cookie and the session", async () => {
    document.cookie = "csrftoken=abc123";
    let seen;
    const fetchImpl = (path, init) => {
      seen = { path, init };
      return reply(200, { ok: true })();
    };
    await requestJson("/api/x", { method: "POST", body: { reason: "r" }, fetchImpl });
    expect(seen.init.headers["X-CSRFToken"]).toBe("abc123");
    expect(seen.init.credentials).toBe("same-origin");
    expect(JSON.parse(seen.init.body)).toEqual({ reason: "r" });
    expect(csrfToken()).toBe("abc123");
  });

  it("turns the server's answer into a message naming the problem", async () => {
    await expect(requestJson("/x", { fetchImpl: reply(409, { detail: "someone acted first" }) })).rejects.toMatchObject({
      message: "someone acted first",
      status: 409,
    });
    await expect(requestJson("/x", { fetchImpl: reply(400, { stage: ["give the stage index"] }) })).rejects.toThrow(
      "stage: give the stage index",
    );
    await expect(requestJson("/x", { fetchImpl: reply(502, "<html>bad gateway</html>") })).rejects.toThrow("The server failed (HTTP 502).");
  });

  it("says the server cannot be reached when the network fails", async () => {
    const error = await requestJson("/x", { fetchImpl: () => Promise.reject(new TypeError("Failed to fetch")) }).catch((e) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error.message).toBe("The server cannot be reached.");
  });
});

describe("wsUrl", () => {
  it("follows the page's scheme and host", () => {
    expect(wsUrl("/ws/dashboard/", { protocol: "https:", host: "portal.example" })).toBe("wss://portal.example/ws/dashboard/");
    expect(wsUrl("ws/x/", { protocol: "http:", host: "127.0.0.1:8000" })).toBe("ws://127.0.0.1:8000/ws/x/");
  });
});
