// Apollo Client 4 (the framework-free entry point), as a checkout frontend configures it:
// HttpLink + InMemoryCache, __typename added to every selection, extensions.clientLibrary
// on every request. Usage: node apollo.mjs <scenario>, settings in the environment (lib.mjs).
import { createHash, randomUUID } from "node:crypto";

import { ApolloClient, ApolloLink, gql, HttpLink, InMemoryCache } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

import { codes, recordingFetch, run, settings } from "./lib.mjs";

const config = settings();

const POLL = gql`
  query ApolloPoll($id: ID!) {
    checkoutSession(id: $id) { id checkoutSessionStatus amount currency }
  }
`;

const WITH_FRAGMENT = gql`
  query ApolloSessionWithFragment($id: ID!) {
    checkoutSession(id: $id) { ...SessionParts amount }
  }
  fragment SessionParts on CheckoutSession { id checkoutSessionStatus isExpired expiresAt }
`;

// Used by the persisted scenario alone, so that its hash is unknown to the server before.
const PERSISTED_POLL = gql`
  query ApolloPersistedPoll($id: ID!) {
    checkoutSession(id: $id) { id checkoutSessionStatus }
  }
`;

const CREATE = gql`
  mutation ApolloCreate($input: CreateCheckoutSessionInput!) {
    createCheckoutSession(input: $input) { id checkoutSessionStatus amount currency merchantReference }
  }
`;

function client(headers, log, { persisted = false } = {}) {
  const http = new HttpLink({ uri: config.url, headers, fetch: recordingFetch(log) });
  const sha256 = (text) => createHash("sha256").update(text).digest("hex");
  const link = persisted ? ApolloLink.from([new PersistedQueryLink({ sha256 }), http]) : http;
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

/** How Apollo Client 4 hands back an error with errorPolicy "all". */
function describe(error) {
  if (error === undefined) return null;
  if (CombinedGraphQLErrors.is(error)) {
    return { name: error.name, codes: codes(error.errors), messages: error.errors.map((e) => e.message) };
  }
  return { name: error.name, message: error.message, statusCode: error.statusCode ?? null };
}

const readHeaders = { "X-Merchant-Id": config.merchantId };

async function query(document, id, log, apollo) {
  const result = await apollo.query({
    query: document,
    variables: { id },
    errorPolicy: "all",
    fetchPolicy: "no-cache",
  });
  return { data: result.data ?? null, error: describe(result.error), requests: log };
}

run({
  async query() {
    const log = [];
    return query(POLL, config.sessionId, log, client(readHeaders, log));
  },
  async fragment() {
    const log = [];
    return query(WITH_FRAGMENT, config.sessionId, log, client(readHeaders, log));
  },
  async "not-found"() {
    const log = [];
    return query(POLL, randomUUID(), log, client(readHeaders, log));
  },
  async persisted() {
    // One client, two polls: the first registers the document (hash, NOT_FOUND, retry
    // with the document), the second sends the hash alone.
    const log = [];
    const apollo = client(readHeaders, log, { persisted: true });
    const first = await query(PERSISTED_POLL, config.sessionId, [], apollo);
    const second = await query(PERSISTED_POLL, config.sessionId, [], apollo);
    return { first: first.data, firstError: first.error, second: second.data, secondError: second.error, requests: log };
  },
  async create() {
    const log = [];
    const apollo = client({ Authorization: `Bearer ${config.apiKey}` }, log);
    const result = await apollo.mutate({
      mutation: CREATE,
      variables: { input: { amount: 2500, currency: "EUR", merchantReference: "apollo-order-1" } },
      errorPolicy: "all",
    });
    return { data: result.data ?? null, error: describe(result.error), requests: log };
  },
  async unauthenticated() {
    const log = [];
    const apollo = client({ Authorization: "Bearer not-a-valid-key" }, log);
    const result = await apollo.mutate({
      mutation: CREATE,
      variables: { input: { amount: 2500, currency: "EUR" } },
      errorPolicy: "all",
    });
    return { data: result.data ?? null, error: describe(result.error), requests: log };
  },
});
