// graphql-ws 6 (the graphql-transport-ws protocol) with the `ws` package as its WebSocket,
// as a Node backend-for-frontend or a test harness runs it.
// Usage: node graphql-ws.mjs <scenario>, settings in the environment (lib.mjs).
import { randomUUID } from "node:crypto";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { CARD, codes, COMPLETE, post, run, settings } from "./lib.mjs";

const config = settings();

const POLL = `query WsPoll($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus amount } }`;
const WATCH = `subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus }
}`;

function connect(connectionParams, closes = []) {
  return createClient({
    url: config.wsUrl,
    connectionParams,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    on: { closed: (event) => closes.push({ code: event.code, reason: event.reason }) },
  });
}

/** What the sink's error callback received: GraphQL errors, a close event or an Error. */
function describe(error) {
  if (Array.isArray(error)) return { codes: codes(error), messages: error.map((e) => e.message) };
  if (error && typeof error.code === "number") return { closeCode: error.code, reason: error.reason };
  return { message: String(error?.message ?? error) };
}

/**
 * Runs one operation to its end. `onNext(payload, index)` sees each result as it comes.
 * Resolves to { results, error, completed }: an error ends the operation as the protocol
 * says, and is reported rather than thrown.
 */
function operation(client, query, variables, onNext = () => {}) {
  return new Promise((resolve) => {
    const results = [];
    client.subscribe(
      { query, variables },
      {
        next: (payload) => {
          results.push(payload);
          Promise.resolve(onNext(payload, results.length - 1)).catch((error) => {
            console.error(error?.stack ?? error);
            process.exit(1);
          });
        },
        error: (error) => resolve({ results, error: describe(error), completed: false }),
        complete: () => resolve({ results, error: null, completed: true }),
      },
    );
  });
}

run({
  async subscribe() {
    const client = connect({ merchantId: config.merchantId });
    // A query over the same socket the subscription then uses.
    const query = await operation(client, POLL, { id: config.sessionId });
    let completion = null;
    const subscription = await operation(client, WATCH, { id: config.sessionId }, async (_payload, index) => {
      if (index !== 0) return;
      // The first event is the current state; now the payment goes through.
      completion = await post(
        config.url,
        COMPLETE,
        { id: config.sessionId, paymentMethod: CARD },
        { Authorization: `Bearer ${config.apiKey}` },
      );
    });
    await client.dispose();
    return { query, subscription, completion };
  },
  async "not-found"() {
    const client = connect({ merchantId: config.merchantId });
    const subscription = await operation(client, WATCH, { id: randomUUID() });
    await client.dispose();
    return { subscription };
  },
  async forbidden() {
    // No credentials in connection_init: the socket closes before any operation runs.
    const closes = [];
    const client = connect({}, closes);
    const subscription = await operation(client, WATCH, { id: config.sessionId });
    await client.dispose();
    return { subscription, closes };
  },
});
