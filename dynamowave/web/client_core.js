// DynamoWave web client core: the chat rules with no DOM, no socket and no timers.
//
// The same structure as the Python clients' dynamowave/client_core.py (docs/clients.md): a
// room's messages de-duplicated by seq, the recovery mark a re-join asks from, the newest state
// of a changed message by rev, which pending send goes out on which socket, the reconnect
// backoff. app.js (the page) feeds it frames and renders what it returns; tests/web/ runs it
// under `node --test`. Loaded as a plain script in the page (window.DynamoWaveCore) and as a
// CommonJS module in Node.
"use strict";

((root, build) => {
  const core = build();
  if (typeof module === "object" && module.exports) module.exports = core;
  else root.DynamoWaveCore = core;
})(typeof self !== "undefined" ? self : globalThis, () => {
  // docs/protocol.md's room names and user ids (tests/unit/test_whole_string_patterns.py checks
  // them against functions/chat/protocol.py). JavaScript's `$` without the m flag ends the string.
  const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
  const USER_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;

  // Exponential backoff with jitter, so a restarted server is not hit by every tab at once:
  // uniform in [ceiling / 2, ceiling], the ceiling doubling from 0.5 s to 30 s.
  function reconnectDelay(attempt, random = Math.random) {
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  function minSeq(room) {
    let min = Infinity;
    for (const seq of room.messages.keys()) if (seq < min) min = seq;
    return min === Infinity ? 0 : min;
  }

  // Highest seq up to which this client holds every message without a hole. Fan-out may
  // deliver 7 before 6; recovering from the contiguous mark (not the highest seq seen) means a
  // reconnect in that window cannot lose message 6.
  function recoveryMark(room) {
    const low = minSeq(room);
    if (low === 0) return room.latest;
    let seq = low;
    while (room.messages.has(seq + 1)) seq += 1;
    return seq;
  }

  function olderAvailable(room) {
    const low = minSeq(room);
    return low > 1 && !room.historyExhausted;
  }

  // `join`: a re-join carries the recovery mark and the last change seen (docs/protocol.md).
  function joinFrame(room) {
    const frame = { action: "join", room: room.name };
    if (room.everJoined) {
      frame.since = recoveryMark(room);
      frame.rev = room.rev;
    }
    return frame;
  }

  // A message's changeable state (docs/protocol.md, "Message lifecycle"); absent: never changed.
  function lifecycleState(raw) {
    const reactions = {};
    if (raw.reactions && typeof raw.reactions === "object") {
      for (const [emoji, users] of Object.entries(raw.reactions)) {
        if (Array.isArray(users) && users.length) reactions[emoji] = users.map(String);
      }
    }
    return {
      rev: Number.isSafeInteger(Number(raw.rev)) ? Number(raw.rev) : 0,
      editedAt: raw.editedAt == null ? null : Number(raw.editedAt),
      deleted: raw.deleted === true,
      reactions,
    };
  }

  function normaliseMessage(raw, roomName, now = Date.now) {
    if (!raw || typeof raw !== "object") return null;
    const seq = Number(raw.seq);
    if (!Number.isSafeInteger(seq) || seq < 1) return null;
    return {
      room: typeof raw.room === "string" ? raw.room : roomName,
      id: String(raw.id ?? ""),
      seq,
      user: String(raw.user ?? ""),
      name: typeof raw.name === "string" && raw.name ? raw.name : String(raw.user ?? ""),
      text: String(raw.text ?? ""),
      ts: Number(raw.ts) || now(),
      clientMsgId: typeof raw.clientMsgId === "string" ? raw.clientMsgId : "",
      ...lifecycleState(raw),
    };
  }

  // Whether a copy of a held message replaces it: an ack-made placeholder gives way to the
  // server's copy, and an older state to a newer one (updates come in any order and may repeat).
  function replaces(known, incoming) {
    return Boolean(known.fromAck) || incoming.rev > known.rev;
  }

  // A pending send goes out (again, with the same clientMsgId: sends are idempotent) only into a
  // room joined on the current socket, once per socket, while it still waits for its ack.
  function sendDue(room, pending, generation) {
    return room.joined && pending.status === "pending" && pending.sentOn !== generation;
  }

  function sendFrame(room, pending) {
    return { action: "sendmessage", room: room.name, text: pending.text, clientMsgId: pending.clientMsgId };
  }

  return {
    ROOM_RE,
    USER_RE,
    reconnectDelay,
    minSeq,
    recoveryMark,
    olderAvailable,
    joinFrame,
    lifecycleState,
    normaliseMessage,
    replaces,
    sendDue,
    sendFrame,
  };
});
