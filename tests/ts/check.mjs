// The official TypeScript SDK against an Anthropic API at ANTHROPIC_BASE_URL (laneway's
// gateway in the tests): the SDK reads the URL and key from the environment itself, as
// an app pointed at the gateway would. Prints one JSON line of what each call gave;
// exits non-zero if any call failed or gave something it should not.
import Anthropic, { BadRequestError } from '@anthropic-ai/sdk';

const MODEL = 'claude-haiku-4-5';
const PROMPT = 'Say hello in five words.';
const MESSAGES = [{ role: 'user', content: PROMPT }];

if (!process.env.ANTHROPIC_BASE_URL) {
  console.error('check.mjs: set ANTHROPIC_BASE_URL (this check never calls the real API)');
  process.exit(2);
}
const client = new Anthropic({ maxRetries: 0, timeout: 30_000 });
const results = { model: MODEL, prompt: PROMPT };
const failures = [];

function expect(ok, what) {
  if (!ok) throw new Error(what);
}

async function create() {
  const { data, request_id } = await client.messages
    .create({ model: MODEL, max_tokens: 20, messages: MESSAGES })
    .withResponse();
  expect(typeof request_id === 'string' && request_id.startsWith('req_'), 'no request-id');
  expect(data.id.startsWith('msg_'), `a message id: ${data.id}`);
  const { id, ...message } = data;
  return message;
}

async function stream() {
  const texts = [];
  const events = [];
  const s = client.messages.stream({ model: MODEL, max_tokens: 20, messages: MESSAGES });
  s.on('text', (delta) => texts.push(delta));
  for await (const event of s) events.push(event.type);
  const final = await s.finalMessage();
  const text = final.content.map((b) => b.text).join('');
  expect(texts.join('') === text, `streamed text ${texts.join('')} != final ${text}`);
  return {
    events,
    text,
    final: {
      type: final.type, role: final.role, model: final.model,
      stop_reason: final.stop_reason, stop_sequence: final.stop_sequence,
      content: final.content.map((b) => ({ type: b.type, text: b.text })),
      input_tokens: final.usage.input_tokens, output_tokens: final.usage.output_tokens,
    },
  };
}

async function countTokens() {
  return await client.messages.countTokens({ model: MODEL, messages: MESSAGES });
}

async function models() {
  const all = [];
  for await (const model of client.models.list({ limit: 5 })) all.push(model);
  return all;
}

async function badRequest() {
  try {
    await client.messages.create({ model: MODEL, max_tokens: 20, messages: MESSAGES,
                                   not_a_field: 1 });
  } catch (err) {
    expect(err instanceof BadRequestError, `not a BadRequestError: ${err}`);
    return { class: err.constructor.name, status: err.status, type: err.type,
             error: err.error?.error, has_request_id: err.requestID?.startsWith('req_') };
  }
  throw new Error('a request with an unknown field was accepted');
}

const checks = { create, stream, count_tokens: countTokens, models, bad_request: badRequest };
for (const [name, run] of Object.entries(checks)) {
  try {
    results[name] = await run();
  } catch (err) {
    failures.push(`${name}: ${err?.stack ?? err}`);
  }
}
console.log(JSON.stringify(results));
if (failures.length) {
  console.error(failures.join('\n'));
  process.exit(1);
}
