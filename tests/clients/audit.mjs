// The GraphQL-over-HTTP reference audit: auditServer of graphql-http, run unmodified against
// /graphql. Prints every audit with its status (ok, warn, error) and reason.
// Usage: node audit.mjs run, settings in the environment (lib.mjs).
import { auditServer } from "graphql-http";

import { run, settings } from "./lib.mjs";

const config = settings();

run({
  async run() {
    const results = await auditServer({ url: config.url });
    return {
      results: await Promise.all(
        results.map(async (result) => ({
          id: result.id,
          name: result.name,
          status: result.status,
          reason: result.status === "ok" ? null : result.reason,
          response:
            result.status === "ok"
              ? null
              : { status: result.response.status, body: (await result.response.text()).slice(0, 300) },
        })),
      ),
    };
  },
});
