#!/usr/bin/env node
/**
 * A small stdio MCP server bundled for the demo and the tests: tools `echo`,
 * `add` and `whoami` (what the relay tells it: nothing; it is a plain stdio
 * server that knows nothing about encryption).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const server = new McpServer({ name: 'mcp-e2e-demo-server', version: '1.0.0' });
server.registerTool('echo', { description: 'Echo a message back', inputSchema: { message: z.string() } }, async ({ message }) => ({
  content: [{ type: 'text', text: `Echo: ${message}` }],
}));
server.registerTool('add', { description: 'Add two numbers', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({
  content: [{ type: 'text', text: String(a + b) }],
}));
server.registerTool('pid', { description: 'The process id of this server (one process per connection)' }, async () => ({
  content: [{ type: 'text', text: String(process.pid) }],
}));
await server.connect(new StdioServerTransport());
