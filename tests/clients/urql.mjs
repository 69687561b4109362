// urql's framework-free core (@urql/core 6) with its fetchExchange, as a frontend sets it
// up. Its default sends queries as GET ("within-url-limit"); `post` forces POST.
// Usage: node urql.mjs <scenario>, settings in the environment (lib.mjs).
import { randomUUID } from "node:crypto";

import { Client, fetchExchange, gql } from "@urql/core";

import { codes, recordingFetch, run, settings } from "./lib.mjs";

const config = settings();

const POLL = gql`
  query UrqlPoll($id: ID!) {
    checkoutSession(id: $id) { id checkoutSessionStatus amount currency }
  }
`;

async function poll(id, clientOptions) {
  const log = [];
  const client = new Client({
    url: config.url,
    exchanges: [fetchExchange],
    fetch: recordingFetch(log),
    fetchOptions: { headers: { "X-Merchant-Id": config.merchantId } },
    requestPolicy: "network-only",
    ...clientOptions,
  });
  const result = await client.query(POLL, { id }).toPromise();
  const error = result.error
    ? {
        message: result.error.message,
        codes: codes(result.error.graphQLErrors),
        networkError: result.error.networkError?.message ?? null,
      }
    : null;
  return { data: result.data ?? null, error, requests: log };
}

run({
  post: () => poll(config.sessionId, { preferGetMethod: false }),
  get: () => poll(config.sessionId, {}), // urql's default: GET for queries
  "not-found": () => poll(randomUUID(), { preferGetMethod: false }),
});
