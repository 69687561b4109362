// What every client script shares: its settings from the environment, one JSON line out,
// a fetch that records the exchanges (so a test sees what the client really sent), and a
// watchdog so that a hung client fails instead of waiting for pytest's timeout.

const WATCHDOG_MS = 30_000;

/** The settings tests/e2e/test_clients.py passes in the environment. */
export function settings() {
  const url = required("GQL_CHECKOUT_URL"); // http://127.0.0.1:PORT/graphql
  return {
    url,
    wsUrl: url.replace(/^http/, "ws"),
    merchantId: required("GQL_CHECKOUT_MERCHANT_ID"),
    apiKey: required("GQL_CHECKOUT_API_KEY"),
    sessionId: process.env.GQL_CHECKOUT_SESSION_ID ?? null,
    scenario: process.argv[2] ?? null,
  };
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** The codes of a list of GraphQL errors, as the contract puts them in extensions.code. */
export function codes(errors) {
  return (errors ?? []).map((error) => error?.extensions?.code ?? null);
}

/**
 * A fetch (Node's built-in one) that appends every exchange to `log`: method, the parsed
 * request body or query string, the status, the content type and the parsed response body
 * (left out with `{ bodies: false }`, for streams that must not be read to their end).
 */
export function recordingFetch(log, { bodies = true } = {}) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    const method = (init.method ?? "GET").toUpperCase();
    const response = await fetch(input, init);
    const text = bodies ? await response.clone().text() : null;
    log.push({
      method,
      params: Object.fromEntries(url.searchParams),
      body: typeof init.body === "string" ? parseJson(init.body) : null,
      headers: Object.fromEntries(new Headers(init.headers ?? {})),
      status: response.status,
      contentType: response.headers.get("content-type"),
      response: bodies ? parseJson(text) : null,
    });
    return response;
  };
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A GraphQL request through plain fetch (what the test itself does between client steps). */
export async function post(url, query, variables, headers) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: await response.json() };
}

export const COMPLETE = `mutation Complete($id: ID!, $paymentMethod: PaymentMethodInput!) {
  completeCheckoutSession(id: $id, paymentMethod: $paymentMethod) { id checkoutSessionStatus }
}`;
export const CARD = { type: "CARD", brand: "VISA", last4: "4242" };

/**
 * Runs one scenario: `scenarios[name]()` resolves to what was observed, printed as one
 * JSON line; an unexpected exception prints its stack to stderr and exits 1.
 */
export function run(scenarios) {
  const { scenario } = settings();
  const chosen = scenarios[scenario];
  const watchdog = setTimeout(() => {
    console.error(`scenario ${scenario} did not finish within ${WATCHDOG_MS} ms`);
    process.exit(2);
  }, WATCHDOG_MS);
  watchdog.unref();
  if (chosen === undefined) {
    console.error(`unknown scenario ${scenario}; one of: ${Object.keys(scenarios).join(", ")}`);
    process.exit(64);
  }
  chosen().then(
    (observed) => {
      process.stdout.write(`${JSON.stringify(observed)}\n`);
      process.exit(0);
    },
    (error) => {
      console.error(error?.stack ?? error);
      process.exit(1);
    },
  );
}
