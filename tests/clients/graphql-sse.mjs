// graphql-sse 2 in its "distinct connections" mode (one POST with Accept: text/event-stream
// per operation), identified by the same headers as GraphQL over HTTP.
// Usage: node graphql-sse.mjs <scenario>, settings in the environment (lib.mjs).
import { createClient } from "graphql-sse";

import { CARD, codes, COMPLETE, post, recordingFetch, run, settings } from "./lib.mjs";

const config = settings();

const POLL = `query SsePoll($id: ID!) { checkoutSession(id: $id) { id checkoutSessionStatus amount } }`;
const WATCH = `subscription Watch($id: ID!) {
  checkoutSessionUpdated(id: $id) { id checkoutSessionStatus }
}`;

function describe(error) {
  if (Array.isArray(error)) return { codes: codes(error), messages: error.map((e) => e.message) };
  return {
    name: error?.name ?? null,
    message: String(error?.message ?? error),
    status: error?.response?.status ?? null,
  };
}

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
    const requests = [];
    const client = createClient({
      url: config.url,
      headers: { "X-Merchant-Id": config.merchantId },
      retryAttempts: 0,
      fetchFn: recordingFetch(requests, { bodies: false }),
    });
    const query = await operation(client, POLL, { id: config.sessionId });
    let completion = null;
    const subscription = await operation(client, WATCH, { id: config.sessionId }, async (_payload, index) => {
      if (index !== 0) return;
      completion = await post(
        config.url,
        COMPLETE,
        { id: config.sessionId, paymentMethod: CARD },
        { Authorization: `Bearer ${config.apiKey}` },
      );
    });
    client.dispose();
    return { query, subscription, completion, requests };
  },
});
