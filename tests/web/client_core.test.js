// The web client's core (dynamowave/web/client_core.js) under `node --test`, with no browser:
// the same rules tests/unit/test_client_core.py checks for the Python clients.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const core = require("../../dynamowave/web/client_core.js");

function room(seqs, extra = {}) {
  const messages = new Map(seqs.map((seq) => [seq, { seq, rev: 0 }]));
  const latest = seqs.length ? Math.max(...seqs) : 0;
  return { name: "r", messages, latest, everJoined: false, rev: 0, historyExhausted: false, joined: false, ...extra };
}

test("the recovery mark stops at the first hole", () => {
  assert.equal(core.recoveryMark(room([4, 5, 6, 8])), 6);
  assert.equal(core.recoveryMark(room([], { latest: 9 })), 9);
  assert.equal(core.minSeq(room([4, 5, 6, 8])), 4);
});

test("the first join asks for the latest, every re-join from the mark and the rev", () => {
  assert.deepEqual(core.joinFrame(room([1, 2])), { action: "join", room: "r" });
  assert.deepEqual(core.joinFrame(room([1, 2, 4], { everJoined: true, rev: 7 })), {
    action: "join",
    room: "r",
    since: 2,
    rev: 7,
  });
});

test("older history is offered until the first message or the end of history", () => {
  assert.equal(core.olderAvailable(room([3, 4])), true);
  assert.equal(core.olderAvailable(room([1, 2])), false);
  assert.equal(core.olderAvailable(room([3, 4], { historyExhausted: true })), false);
});

test("only a newer rev, or the server's copy of an ack placeholder, replaces a held message", () => {
  assert.equal(core.replaces({ rev: 2 }, { rev: 3 }), true);
  assert.equal(core.replaces({ rev: 2 }, { rev: 2 }), false);
  assert.equal(core.replaces({ rev: 2 }, { rev: 1 }), false);
  assert.equal(core.replaces({ rev: 0, fromAck: true }, { rev: 0 }), true);
});

test("messages are normalised, and frames without a usable seq are refused", () => {
  const msg = core.normaliseMessage({ seq: 3, user: "bob", text: "hi", ts: 5, rev: 2, deleted: true }, "r");
  assert.deepEqual(
    [msg.room, msg.seq, msg.user, msg.name, msg.text, msg.ts, msg.rev, msg.deleted],
    ["r", 3, "bob", "bob", "hi", 5, 2, true],
  );
  assert.equal(core.normaliseMessage({ seq: 0 }, "r"), null);
  assert.equal(core.normaliseMessage({ seq: "x" }, "r"), null);
  assert.equal(core.normaliseMessage(null, "r"), null);
  assert.equal(core.normaliseMessage({ seq: 1 }, "r", () => 42).ts, 42);
});

test("a pending send goes out once per socket into a joined room until acknowledged", () => {
  const joined = room([], { joined: true });
  const pending = { clientMsgId: "c1", text: "hello", status: "pending", sentOn: 0 };
  assert.equal(core.sendDue(room([]), pending, 1), false);
  assert.equal(core.sendDue(joined, pending, 1), true);
  pending.sentOn = 1;
  assert.equal(core.sendDue(joined, pending, 1), false);
  assert.equal(core.sendDue(joined, pending, 2), true);
  assert.equal(core.sendDue(joined, { ...pending, status: "failed" }, 3), false);
  assert.deepEqual(core.sendFrame(joined, pending), {
    action: "sendmessage",
    room: "r",
    text: "hello",
    clientMsgId: "c1",
  });
});

test("reconnects back off with jitter up to the cap", () => {
  assert.deepEqual(
    [0, 1, 2, 12].map((attempt) => core.reconnectDelay(attempt, () => 0)),
    [250, 500, 1000, 15000],
  );
  assert.deepEqual(
    [0, 1, 2, 12].map((attempt) => core.reconnectDelay(attempt, () => 1)),
    [500, 1000, 2000, 30000],
  );
});

test("room names and user ids are whole-string patterns", () => {
  assert.equal(core.ROOM_RE.test("general"), true);
  assert.equal(core.ROOM_RE.test("general\n"), false);
  assert.equal(core.USER_RE.test("alice@example.com"), true);
  assert.equal(core.USER_RE.test("a b"), false);
});
