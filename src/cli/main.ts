#!/usr/bin/env node
/** mcp-e2e command-line entry point (stub until the CLI issue lands). */
process.stdout.write(`usage: mcp-e2e <command> [options]

Commands (coming with the CLI):
  keygen     create a node identity
  id         print this node's id and fingerprint
  serve      put a stdio MCP server behind an encrypted endpoint
  connect    reach an encrypted endpoint as a stdio MCP server
  peers      manage allowed and known peers
`);
