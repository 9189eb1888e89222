// DynamoWave web client: plain JavaScript, no build step, no dependencies.
//
// Wire contract: docs/protocol.md (v1, and v2's users and conversations: rooms, read, dm). Choices this client makes where the contract
// leaves room are written down in docs/clients.md.
//
// Security rule for this file: user-controlled text (messages, names, user ids, room names,
// server error messages) is only ever put into the page with textContent or attributes, never
// with innerHTML, so a message such as <img src=x onerror=alert(1)> shows literally.
"use strict";

(() => {
  // The chat rules (de-duplication, recovery mark, resend, backoff): client_core.js, loaded first.
  const core = window.DynamoWaveCore;
  const { ROOM_RE, USER_RE, minSeq, recoveryMark, olderAvailable, lifecycleState } = core;
  const TYPING_SEND_EVERY_MS = 2000; // at most one `typing` frame per 2 s while typing
  const TYPING_SHOW_MS = 3000; // "X is typing" fades 3 s after the last event
  const PING_EVERY_MS = 4 * 60 * 1000; // API Gateway closes connections idle for 10 min
  const ACK_TIMEOUT_MS = 10000; // resend (same clientMsgId: idempotent) if no ack by then
  const MAX_AUTO_RESENDS = 2;
  const HISTORY_PAGE = 50;
  const NEAR_BOTTOM_PX = 80;
  const NEAR_TOP_PX = 48;
  const TOAST_MS = 8000;
  const READ_DEBOUNCE_MS = 800; // read markers follow what the user sees, at most ~1 frame/s per room
  const AUTO_JOIN_ROOMS = 15; // rooms from `rooms` subscribed on connect (the rate limit's burst is 20)

  const $ = (id) => document.getElementById(id);

  const state = {
    session: null, // {mode: "local"|"remote", userId, name, url, token, exp, dm, mod}
    ws: null,
    generation: 0, // bumps on every new socket, so stale socket callbacks are ignored
    wanted: false, // the user wants to be connected (false after "Sign out")
    everOpened: false,
    attempt: 0,
    reconnectTimer: null,
    holdReconnect: false, // test hook: stay offline until resume()
    pingTimer: null,
    lastPong: 0,
    rooms: new Map(), // room name -> Room
    editing: null, // {room, seq}: the composer edits that message (up-arrow or Edit)
    active: null,
    names: new Map(), // user id -> display name seen in messages
  };

  // ---------------------------------------------------------------------------------------
  // Rooms and messages (the model)

  function newRoom(name) {
    return {
      name,
      joined: false, // joined on the current socket
      everJoined: false, // joined at least once: re-joins carry `since`
      joinTimer: null,
      messages: new Map(), // seq -> message; the single source of truth, de-duplicated by seq
      pending: new Map(), // clientMsgId -> {clientMsgId, text, ts, status, error, sentOn, resends, timer}
      members: new Set(),
      typing: new Map(), // user id -> timeout handle
      lastTypingSent: 0,
      latest: 0,
      historyExhausted: false,
      loadingOlder: false,
      kind: "room", // "room" or "dm" (v2)
      peer: null, // a DM's other user
      read: 0, // the user's read marker, from the server (joined, rooms, read from any tab)
      readSent: 0, // highest marker this tab asked for
      readTimer: null,
      peerRead: 0, // a DM's other user's marker (receipt): "seen"
      preview: null, // `last` from the room list, until messages are loaded
      rev: 0, // the room's last change seen (v2 lifecycle): re-joins recover changes after it
      epoch: null, // the room's history epoch: a new one means the server's history was reset
    };
  }

  // docs/protocol.md: `joined` and `history` carry the room's epoch. A different one means the
  // history this tab holds is gone (a restarted local runtime, recreated tables): seq 1 is a new
  // message, not a duplicate, so the cache for the room is dropped. True if it was.
  function adoptEpoch(room, epoch) {
    if (typeof epoch !== "string" || !epoch) return false;
    const reset = room.epoch !== null && room.epoch !== epoch;
    room.epoch = epoch;
    if (reset) {
      room.messages.clear();
      room.rev = 0;
      room.latest = 0;
      room.read = 0;
      room.readSent = 0;
      room.historyExhausted = false;
      if (room.name === state.active) renderConversation();
    }
    return reset;
  }

  // Unread is derived, as the server derives it: messages after the marker (docs/protocol.md).
  function unreadOf(room) {
    return Math.max(0, room.latest - room.read);
  }

  function roomLabel(room) {
    return room.kind === "dm" && room.peer ? `@ ${displayName(room.peer)}` : `# ${room.name}`;
  }

  function ensureRoom(name, kind, peer) {
    let room = state.rooms.get(name);
    if (!room) {
      room = newRoom(name);
      state.rooms.set(name, room);
    }
    if (kind) room.kind = kind;
    if (peer) room.peer = peer;
    return room;
  }

  // Debounced: the marker is sent once the user has stayed on the latest messages for a moment.
  function scheduleRead(room) {
    if (room.latest <= Math.max(room.read, room.readSent)) return;
    clearTimeout(room.readTimer);
    room.readTimer = setTimeout(() => {
      if (!socketOpen() || room.latest <= Math.max(room.read, room.readSent)) return;
      room.readSent = room.latest;
      send({ action: "read", room: room.name, seq: room.latest });
    }, READ_DEBOUNCE_MS);
  }

  function seesLatest(room) {
    if (room.name !== state.active || document.visibilityState === "hidden") return false;
    const scroller = $("scroller");
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  function normaliseMessage(raw, roomName) {
    return core.normaliseMessage(raw, roomName);
  }

  // An `update` (or a recovered one) replaces the message's state if it is newer: updates come
  // in any order and may repeat, and the highest rev is the current state everywhere.
  function applyUpdate(room, raw) {
    if (!raw || typeof raw !== "object") return;
    const seq = Number(raw.seq);
    const change = lifecycleState(raw);
    if (change.rev > room.rev) room.rev = change.rev;
    const msg = room.messages.get(seq);
    if (!msg || change.rev <= msg.rev) return;
    Object.assign(msg, change, { text: change.deleted ? "" : String(raw.text ?? "") });
    updateMessageElement(room, msg);
  }

  // Adds messages (de-duplicated by seq) and returns the ones that were new.
  function storeMessages(room, rawMessages) {
    const added = [];
    let learnedName = false;
    for (const raw of rawMessages || []) {
      const msg = normaliseMessage(raw, room.name);
      if (!msg) continue;
      if (msg.user && msg.name && state.names.get(msg.user) !== msg.name) {
        state.names.set(msg.user, msg.name);
        learnedName = true;
      }
      if (msg.user === me() && msg.clientMsgId) settlePending(room, msg.clientMsgId);
      const known = room.messages.get(msg.seq);
      if (known) {
        // An ack-made placeholder is replaced by the server's copy (timestamp, name), and an
        // older copy by a newer state (history and joined list messages as they are now).
        if (core.replaces(known, msg)) {
          room.messages.set(msg.seq, msg);
          updateMessageElement(room, msg);
        }
        continue;
      }
      room.messages.set(msg.seq, msg);
      if (msg.seq > room.latest) room.latest = msg.seq;
      added.push(msg);
    }
    if (learnedName && room.name === state.active) renderMembers();
    return added;
  }

  function me() {
    return state.session ? state.session.userId : "";
  }

  // ---------------------------------------------------------------------------------------
  // Connection

  function socketOpen() {
    return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
  }

  function send(frame) {
    if (!socketOpen()) return false;
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  async function obtainCredentials() {
    const session = state.session;
    if (session.mode === "remote") {
      if (session.exp && session.exp * 1000 <= Date.now()) {
        throw new FatalConnectError("Your token has expired: paste a fresh one.");
      }
      return { url: session.url, token: session.token };
    }
    const query = new URLSearchParams({ user: session.userId, name: session.name });
    if (session.mod) query.set("mod", session.mod === "*" ? "*" : session.mod.join(","));
    let response;
    try {
      response = await fetch(`/dev/token?${query}`, { cache: "no-store", credentials: "same-origin" });
    } catch (err) {
      throw new ConnectError("The server is unreachable.");
    }
    if (!response.ok) {
      let detail = "";
      try {
        const text = await response.text();
        try {
          detail = String(JSON.parse(text).message || "");
        } catch (err) {
          detail = text;
        }
        detail = detail.slice(0, 200);
      } catch (err) {
        detail = "";
      }
      const why =
        response.status === 403
          ? "Development tokens are only handed out to this machine (loopback). Use “Connect to a deployed endpoint” with a token."
          : response.status === 400
            ? "That user id is not valid: use letters, digits and _ . @ - (up to 64)."
            : response.status === 404
              ? "This server does not hand out development tokens: paste a URL and token instead."
              : `Token request failed (HTTP ${response.status}).`;
      throw new FatalConnectError(detail && response.status !== 404 ? `${why} (${detail})` : why);
    }
    const body = await response.json();
    const fallback = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
    return { url: typeof body.url === "string" && body.url ? body.url : fallback, token: body.token };
  }

  class ConnectError extends Error {}
  class FatalConnectError extends ConnectError {}

  function withToken(url, token) {
    const target = new URL(url);
    target.searchParams.set("token", token);
    // Coalesced delivery (docs/protocol.md): the fan-out may put several frames in one `batch`.
    target.searchParams.set("batch", "1");
    return target.toString();
  }

  async function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!state.wanted) return;
    const generation = ++state.generation;
    setStatus("connecting", state.everOpened ? "Reconnecting…" : "Connecting…");
    let credentials;
    try {
      credentials = await obtainCredentials();
    } catch (err) {
      if (generation !== state.generation) return;
      if (err instanceof FatalConnectError || !state.everOpened) return failLogin(err.message);
      return scheduleReconnect();
    }
    if (generation !== state.generation || !state.wanted) return;

    let ws;
    try {
      ws = new WebSocket(withToken(credentials.url, credentials.token));
    } catch (err) {
      return failLogin(`Not a usable WebSocket URL: ${credentials.url}`);
    }
    state.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      if (generation !== state.generation) return;
      opened = true;
      state.everOpened = true;
      state.attempt = 0;
      setStatus("connected", `Connected as ${state.session.name} (${state.session.userId})`);
      startPing();
      setComposerEnabled(true);
      for (const room of state.rooms.values()) joinRoom(room);
      send({ action: "rooms" }); // the user's rooms from every device (v2)
    });
    ws.addEventListener("message", (event) => {
      if (generation !== state.generation) return;
      handleFrameText(event.data);
    });
    ws.addEventListener("close", (event) => {
      if (generation !== state.generation) return;
      state.ws = null;
      stopPing();
      for (const room of state.rooms.values()) {
        room.joined = false;
        room.readSent = 0;
        clearTimeout(room.joinTimer);
        for (const pending of room.pending.values()) clearTimeout(pending.timer);
      }
      if (!state.wanted) return;
      if (!opened && !state.everOpened) {
        return failLogin(
          "Could not connect: the server refused the token (HTTP 401/403) or is unreachable. Check the URL and token.",
        );
      }
      if (event.code === 1009) toast("too_large", "The server closed the connection: a frame was too large.");
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    if (state.holdReconnect) {
      setStatus("offline", "Offline");
      return;
    }
    const delay = core.reconnectDelay(state.attempt);
    state.attempt += 1;
    setStatus("reconnecting", `Connection lost. Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (state.wanted && !state.ws && !state.holdReconnect && state.reconnectTimer !== null) {
      state.attempt = 0;
      connect();
    }
  }

  function startPing() {
    stopPing();
    state.pingTimer = setInterval(() => send({ action: "ping" }), PING_EVERY_MS);
  }

  function stopPing() {
    clearInterval(state.pingTimer);
    state.pingTimer = null;
  }

  function signOut() {
    state.wanted = false;
    state.generation += 1;
    clearTimeout(state.reconnectTimer);
    stopPing();
    if (state.ws) state.ws.close(1000, "signed out");
    state.ws = null;
    state.everOpened = false;
    state.rooms.clear();
    state.active = null;
    setStatus("disconnected", "Not connected");
    $("chat-view").hidden = true;
    $("login-view").hidden = false;
    $("disconnect").hidden = true;
    renderAll();
    $("name").focus();
  }

  function failLogin(message) {
    state.wanted = false;
    state.generation += 1;
    clearTimeout(state.reconnectTimer);
    stopPing();
    if (state.ws) state.ws.close();
    state.ws = null;
    const hadOpened = state.everOpened;
    state.everOpened = false;
    setStatus("disconnected", "Not connected");
    $("chat-view").hidden = true;
    $("login-view").hidden = false;
    $("disconnect").hidden = true;
    const error = $("login-error");
    error.textContent = hadOpened ? `Disconnected. ${message}` : message;
    error.hidden = false;
  }

  // ---------------------------------------------------------------------------------------
  // Client actions

  function joinRoom(room) {
    send(core.joinFrame(room));
  }

  function addRoom(name) {
    let room = state.rooms.get(name);
    if (!room) {
      room = newRoom(name);
      state.rooms.set(name, room);
    }
    activate(name); // renders the room, which joins it (once) if the socket is open
  }

  function leaveRoom(name) {
    const room = state.rooms.get(name);
    if (!room) return;
    send({ action: "leave", room: name });
    dropRoom(name);
  }

  function openDm(user) {
    if (!USER_RE.test(user) || user === me()) return;
    state.openingDm = user;
    send({ action: "dm", user });
  }

  // The token's `mod` claim: "*" or a list of rooms. Direct messages have no moderators.
  function moderates(roomName) {
    const mod = state.session ? state.session.mod : null;
    if (!roomName || roomName.startsWith("dm.")) return false;
    return mod === "*" || (Array.isArray(mod) && mod.includes(roomName));
  }

  const MOD_DURATIONS = [
    ["", "until lifted"],
    ["300", "5 minutes"],
    ["3600", "1 hour"],
    ["86400", "1 day"],
  ];

  // A small panel (kick / ban / mute and their undo) for one user in one room; one at a time.
  function openModeration(roomName, user, place) {
    for (const open of document.querySelectorAll(".mod-panel")) open.remove();
    const panel = document.createElement("div");
    panel.className = "mod-panel";
    panel.dataset.user = user;
    panel.setAttribute("role", "group");
    panel.setAttribute("aria-label", `Moderate ${user} in ${roomName}`);
    const title = document.createElement("strong");
    title.textContent = `Moderate ${displayName(user)}`;
    const reason = document.createElement("input");
    reason.type = "text";
    reason.className = "mod-reason";
    reason.maxLength = 500;
    reason.placeholder = "Reason (optional)";
    reason.setAttribute("aria-label", "Reason");
    const duration = document.createElement("select");
    duration.className = "mod-duration";
    duration.setAttribute("aria-label", "How long (ban and mute)");
    for (const [value, label] of MOD_DURATIONS) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      duration.append(option);
    }
    panel.append(title, reason, duration);
    const op = (action, label) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `mod-${action} ghost`;
      b.textContent = label;
      b.addEventListener("click", () => {
        const frame = { action, room: roomName, user };
        if ((action === "kick" || action === "ban") && reason.value.trim()) frame.reason = reason.value.trim();
        if ((action === "ban" || action === "mute") && duration.value) frame.seconds = Number(duration.value);
        send(frame);
        panel.remove();
      });
      panel.append(b);
    };
    op("kick", "Kick");
    op("ban", "Ban");
    op("mute", "Mute");
    op("unmute", "Unmute");
    op("unban", "Unban");
    panel.append(closeButton("mod-close ghost", "Close", () => panel.remove()));
    place(panel);
    reason.focus();
  }

  // Shown until dismissed: why this user was removed from a room.
  function showNotice(text) {
    $("notice-text").textContent = text;
    $("notice").hidden = false;
  }

  function dropRoom(name) {
    const room = state.rooms.get(name);
    if (!room) return;
    clearTimeout(room.joinTimer);
    clearTimeout(room.readTimer);
    for (const timer of room.typing.values()) clearTimeout(timer);
    for (const pending of room.pending.values()) clearTimeout(pending.timer);
    state.rooms.delete(name);
    if (state.active === name) {
      const next = state.rooms.keys().next();
      state.active = next.done ? null : next.value;
    }
    renderAll();
  }

  function newClientMsgId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function sendMessage(text) {
    const room = state.rooms.get(state.active);
    if (!room) return;
    const pending = {
      clientMsgId: newClientMsgId(),
      text,
      ts: Date.now(),
      status: "pending",
      error: "",
      sentOn: 0,
      resends: 0,
      timer: null,
    };
    room.pending.set(pending.clientMsgId, pending);
    // Receivers clear "X is typing" when X's message arrives: the next keystroke starts afresh.
    room.lastTypingSent = 0;
    renderPending(room, pending);
    transmit(room, pending);
  }

  // Sends (or re-sends, with the same clientMsgId) a pending message once its room is joined on
  // the current socket; otherwise it waits for the next `joined`.
  function transmit(room, pending) {
    if (!socketOpen() || !core.sendDue(room, pending, state.generation)) return;
    send(core.sendFrame(room, pending));
    pending.sentOn = state.generation;
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      if (!room.pending.has(pending.clientMsgId) || pending.status !== "pending") return;
      pending.sentOn = 0;
      if (pending.resends < MAX_AUTO_RESENDS) {
        pending.resends += 1;
        transmit(room, pending);
      } else {
        failPending(room, pending, "No acknowledgement from the server.");
      }
    }, ACK_TIMEOUT_MS);
  }

  function retry(room, pending) {
    pending.status = "pending";
    pending.error = "";
    pending.sentOn = 0;
    pending.resends = 0;
    renderPending(room, pending);
    transmit(room, pending);
  }

  function failPending(room, pending, why) {
    clearTimeout(pending.timer);
    pending.status = "failed";
    pending.error = why;
    renderPending(room, pending);
  }

  function settlePending(room, clientMsgId) {
    const pending = room.pending.get(clientMsgId);
    if (!pending) return null;
    clearTimeout(pending.timer);
    room.pending.delete(clientMsgId);
    if (room.name === state.active) {
      const el = pendingElement(clientMsgId);
      if (el) el.remove();
    }
    return pending;
  }

  function requestOlder(room) {
    if (!room || room.loadingOlder || !olderAvailable(room) || !room.joined) return;
    room.loadingOlder = true;
    renderHistoryControls();
    send({ action: "history", room: room.name, before: minSeq(room), limit: HISTORY_PAGE });
  }

  function noteTyping() {
    const room = state.rooms.get(state.active);
    if (!room || !room.joined) return;
    const now = Date.now();
    if (now - room.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    room.lastTypingSent = now;
    send({ action: "typing", room: room.name });
  }

  // ---------------------------------------------------------------------------------------
  // Server frames

  function handleFrameText(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (err) {
      console.warn("ignoring a frame that is not JSON", text);
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (frame.type === "batch" && Array.isArray(frame.frames)) {
      // Coalesced delivery: each carried frame is handled as if it had come alone.
      for (const inner of frame.frames) {
        if (inner && typeof inner === "object") handleFrame(inner);
      }
      return;
    }
    handleFrame(frame);
  }

  function handleFrame(frame) {
    const handler = HANDLERS[frame.type];
    if (handler) {
      handler(frame);
    } else if (typeof frame.message === "string") {
      // API Gateway's own replies (e.g. throttling: {"message": "Too Many Requests", ...}) have no type.
      toast("gateway", frame.message);
    }
  }

  const HANDLERS = {
    joined(frame) {
      let room = state.rooms.get(frame.room);
      if (!room && frame.kind === "dm") {
        // The reply to our own `dm`: the room is new to this tab.
        room = ensureRoom(frame.room, "dm", typeof frame.with === "string" ? frame.with : null);
        if (state.openingDm === room.peer) {
          state.openingDm = null;
          state.active = room.name;
          renderAll();
        }
      }
      if (!room) return; // left meanwhile
      const reset = adoptEpoch(room, frame.epoch);
      const recovering = room.everJoined && !reset;
      room.joined = true;
      room.everJoined = true;
      if (frame.kind) room.kind = String(frame.kind);
      if (typeof frame.with === "string") room.peer = frame.with;
      room.read = Math.max(room.read, Number(frame.read) || 0);
      room.latest = Math.max(room.latest, Number(frame.seq) || 0);
      room.members = new Set(Array.isArray(frame.members) ? frame.members.map(String) : []);
      const added = storeMessages(room, frame.messages);
      renderAdded(room, added);
      const updates = Array.isArray(frame.updates) ? frame.updates : [];
      for (const update of updates) applyUpdate(room, update);
      if (Number.isSafeInteger(frame.rev) && frame.rev > room.rev) room.rev = frame.rev;
      if (room.name === state.active) renderMembers();
      renderRooms();
      // Recovery replies are capped (100 messages or 128 KB): ask again from where this one ended.
      if (recovering && frame.more === true && (added.length > 0 || updates.length > 0)) joinRoom(room);
      // A reset seen on a recovery join: `since` counted in the old history, so fetch the new.
      if (reset && (!Array.isArray(frame.messages) || frame.messages.length === 0) && room.latest > 0) {
        send({ action: "history", room: room.name, limit: HISTORY_PAGE });
      }
      for (const pending of room.pending.values()) transmit(room, pending);
      if (seesLatest(room)) scheduleRead(room);
    },

    left(frame) {
      // v2: the membership ended (here or on another device): the room leaves the list.
      const room = state.rooms.get(frame.room);
      if (!room) return;
      room.joined = false;
      if (room.pending.size === 0) {
        clearTimeout(room.readTimer);
        state.rooms.delete(room.name);
        if (state.active === room.name) {
          const next = state.rooms.keys().next();
          state.active = next.done ? null : next.value;
        }
        renderAll();
      }
    },

    kicked(frame) {
      removedByModerator(frame, "removed from");
    },

    banned(frame) {
      removedByModerator(frame, "banned from");
    },

    moderated(frame) {
      const done = { kick: "kicked from", ban: "banned from", unban: "unbanned in", mute: "muted in", unmute: "unmuted in" };
      toast("moderated", `${displayName(String(frame.user))} ${done[frame.op] || frame.op} ${frame.room}`);
    },

    rooms(frame) {
      if (!Array.isArray(frame.rooms)) return;
      let joins = 0;
      for (const entry of frame.rooms) {
        if (!entry || typeof entry.room !== "string" || !ROOM_RE.test(entry.room)) continue;
        const known = state.rooms.has(entry.room);
        const room = ensureRoom(entry.room, String(entry.kind || "room"), typeof entry.with === "string" ? entry.with : null);
        room.read = Math.max(room.read, Number(entry.read) || 0);
        room.latest = Math.max(room.latest, Number(entry.seq) || 0);
        if (entry.last && typeof entry.last === "object") {
          room.preview = entry.last;
          if (entry.last.user && entry.last.name) state.names.set(String(entry.last.user), String(entry.last.name));
        }
        // Subscribe the most recently active ones, so their messages and badges stay live.
        if (!known && !room.joined && socketOpen() && joins < AUTO_JOIN_ROOMS) {
          joins += 1;
          joinRoom(room);
        }
      }
      if (state.active === null && state.rooms.size > 0) state.active = state.rooms.keys().next().value;
      renderAll();
    },

    read(frame) {
      const room = state.rooms.get(frame.room);
      if (!room) return;
      const seq = Number(frame.seq) || 0;
      if (seq > room.read) room.read = seq;
      renderRooms();
    },

    receipt(frame) {
      const room = state.rooms.get(frame.room);
      if (!room || frame.user === me()) return;
      const seq = Number(frame.seq) || 0;
      if (seq <= room.peerRead) return;
      room.peerRead = seq;
      if (room.name === state.active) renderSeen(room);
    },

    invited(frame) {
      if (typeof frame.room !== "string" || !ROOM_RE.test(frame.room)) return;
      const from = typeof frame.from === "string" ? frame.from : "";
      const known = state.rooms.has(frame.room);
      const room = ensureRoom(frame.room, String(frame.kind || "room"), frame.kind === "dm" ? from : null);
      if (!known && socketOpen()) joinRoom(room);
      renderRooms();
      toast("invited", frame.kind === "dm" ? `${displayName(from)} sent you a direct message` : `${from} added you to ${frame.room}`);
    },

    ack(frame) {
      const room = state.rooms.get(frame.room);
      if (!room) return;
      const pending = settlePending(room, frame.clientMsgId);
      const seq = Number(frame.seq);
      if (!pending || !Number.isSafeInteger(seq) || room.messages.has(seq)) return;
      // The fan-out copy may arrive after the ack: show the message as sent right away.
      const msg = {
        room: room.name,
        id: String(frame.id ?? ""),
        seq,
        user: me(),
        name: state.session.name,
        text: pending.text,
        ts: pending.ts,
        clientMsgId: pending.clientMsgId,
        fromAck: true,
        ...lifecycleState({}),
      };
      room.messages.set(seq, msg);
      if (seq > room.latest) room.latest = seq;
      renderAdded(room, [msg]);
      scheduleRead(room); // one's own message is read (the server does not move the marker)
    },

    update(frame) {
      const room = state.rooms.get(frame.room);
      if (room) applyUpdate(room, frame);
    },

    changed() {
      // The change is stored; its `update`, which every tab of the room gets, shows it.
    },

    message(frame) {
      const room = state.rooms.get(frame.room);
      if (!room) return;
      const added = storeMessages(room, [frame]);
      if (added.length && frame.user) stopTyping(room, String(frame.user));
      renderAdded(room, added);
      if (added.length && seesLatest(room)) scheduleRead(room);
    },

    history(frame) {
      const room = state.rooms.get(frame.room);
      if (!room) return;
      room.loadingOlder = false;
      adoptEpoch(room, frame.epoch);
      const added = storeMessages(room, frame.messages);
      if (frame.more !== true) room.historyExhausted = true;
      renderAdded(room, added);
      renderHistoryControls();
    },

    presence(frame) {
      const room = state.rooms.get(frame.room);
      if (!room || typeof frame.user !== "string") return;
      if (frame.event === "join") room.members.add(frame.user);
      else if (frame.event === "leave") {
        room.members.delete(frame.user);
        stopTyping(room, frame.user);
      }
      if (room.name === state.active) renderMembers();
    },

    typing(frame) {
      const room = state.rooms.get(frame.room);
      if (!room || typeof frame.user !== "string" || frame.user === me()) return;
      clearTimeout(room.typing.get(frame.user));
      room.typing.set(
        frame.user,
        setTimeout(() => stopTyping(room, frame.user), TYPING_SHOW_MS),
      );
      if (room.name === state.active) renderTyping();
    },

    pong(frame) {
      state.lastPong = Number(frame.ts) || Date.now();
    },

    error(frame) {
      const room = typeof frame.room === "string" ? state.rooms.get(frame.room) : undefined;
      const code = String(frame.code || "error");
      const message = String(frame.message || "");
      if (room && frame.clientMsgId && room.pending.has(frame.clientMsgId)) {
        failPending(room, room.pending.get(frame.clientMsgId), `${code}: ${message}`);
      }
      if (room && frame.action === "join") {
        if (code === "rate_limited" || code === "internal") {
          clearTimeout(room.joinTimer);
          room.joinTimer = setTimeout(() => joinRoom(room), 1000 + Math.random() * 1000);
        } else if (!room.everJoined) {
          // Refused for good (forbidden, bad name): drop the room from the sidebar.
          state.rooms.delete(room.name);
          if (state.active === room.name) {
            const next = state.rooms.keys().next();
            state.active = next.done ? null : next.value;
          }
          renderAll();
        }
      }
      if (room && frame.action === "history") {
        room.loadingOlder = false;
        renderHistoryControls();
      }
      // A muted user's typing notices are refused too; the refused send says why, once.
      if (code === "muted" && frame.action === "typing") return;
      toast(code, message, frame.action, frame.room);
    },
  };

  // `kicked` / `banned` (every tab of the user gets it): the room goes, and the user sees why.
  function removedByModerator(frame, how) {
    if (typeof frame.room !== "string") return;
    const by = typeof frame.by === "string" ? frame.by : "a moderator";
    const reason = typeof frame.reason === "string" && frame.reason ? `: ${frame.reason}` : "";
    const text = `You were ${how} ${frame.room} by ${displayName(by)}${reason}`;
    dropRoom(frame.room);
    showNotice(text);
    toast(frame.type, text);
  }

  function stopTyping(room, user) {
    clearTimeout(room.typing.get(user));
    if (room.typing.delete(user) && room.name === state.active) renderTyping();
  }

  // ---------------------------------------------------------------------------------------
  // Rendering (textContent only)

  function displayName(user) {
    return state.names.get(user) || user;
  }

  function setStatus(kind, text) {
    const status = $("status");
    status.dataset.state = kind;
    status.textContent = text;
  }

  function setComposerEnabled(enabled) {
    const usable = enabled && state.active !== null;
    $("message-input").disabled = !usable;
    $("send").disabled = !usable;
  }

  function formatTime(ts) {
    const date = new Date(ts);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function buildMessageElement(msg) {
    const el = $("message-template").content.firstElementChild.cloneNode(true);
    fillMessageElement(el, msg);
    return el;
  }

  function fillMessageElement(el, msg) {
    el.dataset.seq = String(msg.seq);
    el.dataset.user = msg.user;
    if (msg.clientMsgId) el.dataset.clientMsgId = msg.clientMsgId;
    el.classList.toggle("mine", msg.user === me());
    el.classList.remove("pending", "failed");
    const author = el.querySelector(".author");
    author.textContent = msg.name || msg.user;
    author.title = msg.user;
    const time = el.querySelector(".time");
    time.textContent = formatTime(msg.ts);
    time.dateTime = new Date(msg.ts).toISOString();
    time.title = new Date(msg.ts).toLocaleString();
    el.querySelector(".text").textContent = msg.deleted ? "message deleted" : msg.text;
    el.classList.toggle("deleted", msg.deleted === true);
    el.classList.toggle("edited", !msg.deleted && msg.editedAt != null);
    const mark = el.querySelector(".state");
    mark.textContent = msg.user === me() ? "✓ sent" : "";
    el.dataset.status = "sent";
    el.querySelector(".retry").hidden = true;
    fillLifecycle(el, msg);
  }

  const PICKER = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

  function changeFrame(action, msg, extra) {
    return { action, room: msg.room, seq: msg.seq, ...extra };
  }

  // "edited", the reactions (counts, one's own highlighted, click to toggle), the picker, and
  // edit / delete (with a confirmation) on one's own messages. Built as elements, never HTML.
  function fillLifecycle(el, msg) {
    for (const old of el.querySelectorAll(".edited-mark, .reactions, .actions")) old.remove();
    if (msg.deleted) return;
    if (msg.editedAt != null) {
      const edited = document.createElement("span");
      edited.className = "edited-mark";
      edited.textContent = "(edited)";
      el.querySelector(".meta").append(edited);
    }
    const reactions = document.createElement("div");
    reactions.className = "reactions";
    for (const [emoji, users] of Object.entries(msg.reactions || {})) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "reaction ghost";
      const mine = users.includes(me());
      chip.classList.toggle("mine", mine);
      chip.dataset.emoji = emoji;
      chip.title = users.map(displayName).join(", ");
      chip.textContent = `${emoji} ${users.length}`;
      chip.addEventListener("click", () => send(changeFrame("react", msg, { emoji, on: !mine })));
      reactions.append(chip);
    }
    el.append(reactions);
    const actions = document.createElement("div");
    actions.className = "actions";
    const button = (label, cls, onClick) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `${cls} ghost`;
      b.textContent = label;
      b.addEventListener("click", onClick);
      actions.append(b);
      return b;
    };
    button("☺+", "react-add", () => {
      const picker = document.createElement("span");
      picker.className = "picker";
      for (const emoji of PICKER) {
        const mine = (msg.reactions[emoji] || []).includes(me());
        const pick = document.createElement("button");
        pick.type = "button";
        pick.className = "pick ghost";
        pick.dataset.emoji = emoji;
        pick.textContent = emoji;
        pick.addEventListener("click", () => {
          picker.remove();
          send(changeFrame("react", msg, { emoji, on: !mine }));
        });
        picker.append(pick);
      }
      for (const open of actions.querySelectorAll(".picker")) open.remove();
      actions.append(picker);
    });
    if (msg.user !== me() && moderates(msg.room)) {
      button("Moderate", "moderate", () => openModeration(msg.room, msg.user, (panel) => el.append(panel)));
    }
    if (msg.user === me() || moderates(msg.room)) {
      if (msg.user === me()) button("Edit", "edit", () => startEdit(msg));
      const del = button("Delete", "delete", () => {
        if (del.dataset.confirm === "yes") {
          send(changeFrame("delete", msg, {}));
          return;
        }
        // A second click within 4 s confirms (no modal dialog: a misclick costs nothing).
        del.dataset.confirm = "yes";
        del.textContent = "Delete? Click again";
        setTimeout(() => {
          del.dataset.confirm = "";
          del.textContent = "Delete";
        }, 4000);
      });
    }
    el.append(actions);
  }

  // The composer edits instead of sending while `state.editing` names a message.
  function startEdit(msg) {
    const input = $("message-input");
    state.editing = { room: msg.room, seq: msg.seq };
    input.value = msg.text;
    input.dataset.editing = String(msg.seq);
    autoGrow(input);
    input.focus();
  }

  function stopEdit() {
    state.editing = null;
    delete $("message-input").dataset.editing;
  }

  function lastOwnMessage(room) {
    let last = null;
    for (const msg of room.messages.values()) {
      if (msg.user === me() && !msg.deleted && (!last || msg.seq > last.seq)) last = msg;
    }
    return last;
  }

  function updateMessageElement(room, msg) {
    if (room.name !== state.active) return;
    const el = $("messages").querySelector(`.message[data-seq="${msg.seq}"]`);
    if (el) fillMessageElement(el, msg);
  }

  function pendingElement(clientMsgId) {
    for (const el of $("messages").querySelectorAll(".message.pending, .message.failed")) {
      if (el.dataset.clientMsgId === clientMsgId) return el;
    }
    return null;
  }

  function renderPending(room, pending) {
    if (room.name !== state.active) return;
    let el = pendingElement(pending.clientMsgId);
    const fresh = !el;
    if (fresh) {
      el = $("message-template").content.firstElementChild.cloneNode(true);
      el.dataset.clientMsgId = pending.clientMsgId;
      el.dataset.user = me();
      el.classList.add("mine");
      const author = el.querySelector(".author");
      author.textContent = state.session.name;
      author.title = me();
      el.querySelector(".time").textContent = formatTime(pending.ts);
      el.querySelector(".text").textContent = pending.text;
      el.querySelector(".retry").addEventListener("click", () => {
        const current = room.pending.get(pending.clientMsgId);
        if (current) retry(room, current);
      });
    }
    el.classList.toggle("pending", pending.status === "pending");
    el.classList.toggle("failed", pending.status === "failed");
    el.dataset.status = pending.status;
    el.querySelector(".state").textContent =
      pending.status === "failed" ? `not sent: ${pending.error}` : "sending…";
    el.querySelector(".retry").hidden = pending.status !== "failed";
    if (fresh) withScroll(true, () => $("messages").append(el));
  }

  // Inserts each element at its place in seq order; unacknowledged messages stay last.
  function insertBySeq(list, el, seq) {
    let node = list.lastElementChild;
    while (node && (node.dataset.seq === undefined || Number(node.dataset.seq) > seq)) {
      node = node.previousElementSibling;
    }
    list.insertBefore(el, node ? node.nextElementSibling : list.firstElementChild);
  }

  // Keeps the reader's place: stick to the bottom when they were there (or sent the message),
  // keep the visible messages still when older ones are put above them.
  function withScroll(forceBottom, mutate) {
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const atBottom = fromBottom - scroller.clientHeight < NEAR_BOTTOM_PX;
    mutate();
    if (forceBottom || atBottom) scroller.scrollTop = scroller.scrollHeight;
    else scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  function renderAdded(room, added) {
    if (!added.length) return;
    if (room.name !== state.active) {
      renderRooms();
      return;
    }
    const list = $("messages");
    const mine = added.some((m) => m.user === me() && m.seq === room.latest);
    withScroll(mine, () => {
      for (const msg of [...added].sort((a, b) => a.seq - b.seq)) {
        insertBySeq(list, buildMessageElement(msg), msg.seq);
      }
    });
    renderHistoryControls();
    renderSeen(room);
    renderRooms();
  }

  // "Seen" under one's latest message the other DM participant has read.
  function renderSeen(room) {
    if (room.name !== state.active) return;
    for (const el of $("messages").querySelectorAll(".message.seen")) el.classList.remove("seen");
    if (room.kind !== "dm" || room.peerRead < 1) return;
    const mine = [...$("messages").querySelectorAll(".message.mine[data-seq]")].filter(
      (el) => Number(el.dataset.seq) <= room.peerRead,
    );
    const last = mine[mine.length - 1];
    if (last) last.classList.add("seen");
  }

  function renderConversation() {
    const room = state.rooms.get(state.active);
    const list = $("messages");
    list.replaceChildren();
    $("room-title").textContent = room ? roomLabel(room) : "No room yet";
    $("room-subtitle").textContent = room ? "" : "Join a room to start chatting.";
    $("room-subtitle").hidden = Boolean(room);
    if (room) {
      if (!room.joined && !room.everJoined && socketOpen()) joinRoom(room);
      const ordered = [...room.messages.values()].sort((a, b) => a.seq - b.seq);
      for (const msg of ordered) list.append(buildMessageElement(msg));
      for (const pending of room.pending.values()) renderPending(room, pending);
    }
    const scroller = $("scroller");
    scroller.scrollTop = scroller.scrollHeight;
    renderHistoryControls();
    renderMembers();
    renderTyping();
    setComposerEnabled(socketOpen());
    if (room) {
      renderSeen(room);
      if (seesLatest(room)) scheduleRead(room);
    }
  }

  function renderHistoryControls() {
    const room = state.rooms.get(state.active);
    const more = Boolean(room) && olderAvailable(room);
    const button = $("load-older");
    button.hidden = !more;
    button.disabled = Boolean(room && room.loadingOlder);
    button.textContent = room && room.loadingOlder ? "Loading…" : "Load older messages";
    $("history-start").hidden = !room || more || room.messages.size === 0;
  }

  function renderRooms() {
    const list = $("rooms");
    list.replaceChildren();
    for (const room of state.rooms.values()) {
      const item = document.createElement("li");
      item.className = "room";
      item.dataset.room = room.name;
      if (room.name === state.active) item.setAttribute("aria-current", "true");
      if (!room.joined) item.classList.add("not-joined");

      const open = document.createElement("button");
      open.type = "button";
      open.className = "room-open";
      open.textContent = roomLabel(room);
      open.title = room.name;
      if (room.kind === "dm") item.classList.add("dm");
      open.addEventListener("click", () => activate(room.name));
      item.append(open);

      const unread = unreadOf(room);
      if (unread > 0) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = String(unread);
        badge.setAttribute("aria-label", `${unread} unread`);
        item.append(badge);
      }

      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "room-leave ghost";
      leave.textContent = "×";
      leave.title = `Leave ${room.name}`;
      leave.setAttribute("aria-label", `Leave room ${room.name}`);
      leave.addEventListener("click", () => leaveRoom(room.name));
      item.append(leave);
      list.append(item);
    }
  }

  function renderMembers() {
    const room = state.rooms.get(state.active);
    const list = $("members");
    list.replaceChildren();
    const members = room ? [...room.members].sort((a, b) => a.localeCompare(b)) : [];
    for (const user of members) {
      const item = document.createElement("li");
      item.className = "member";
      item.dataset.user = user;
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.setAttribute("aria-hidden", "true");
      const label = document.createElement("span");
      const name = displayName(user);
      label.textContent = name === user ? user : `${name} (${user})`;
      item.append(dot, label);
      if (user === me()) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = "you";
        item.append(you);
      } else if (state.session && state.session.dm !== false) {
        const dm = document.createElement("button");
        dm.type = "button";
        dm.className = "member-dm ghost";
        dm.textContent = "Message";
        dm.setAttribute("aria-label", `Direct message ${name}`);
        dm.addEventListener("click", () => openDm(user));
        item.append(dm);
      }
      if (user !== me() && room && moderates(room.name)) {
        const moderate = document.createElement("button");
        moderate.type = "button";
        moderate.className = "member-moderate ghost";
        moderate.textContent = "Moderate";
        moderate.setAttribute("aria-label", `Moderate ${name}`);
        moderate.addEventListener("click", () => openModeration(room.name, user, (panel) => item.after(panel)));
        item.append(moderate);
      }
      list.append(item);
    }
    $("member-count").textContent = room ? String(members.length) : "";
  }

  function renderTyping() {
    const room = state.rooms.get(state.active);
    const users = room ? [...room.typing.keys()].map(displayName) : [];
    let text = "";
    if (users.length === 1) text = `${users[0]} is typing…`;
    else if (users.length === 2) text = `${users[0]} and ${users[1]} are typing…`;
    else if (users.length > 2) text = `${users.length} people are typing…`;
    $("typing").textContent = text;
  }

  function renderAll() {
    renderRooms();
    renderConversation();
  }

  function activate(name) {
    state.active = name;
    renderAll();
    $("message-input").focus();
  }

  // A "×" button that removes what it closes.
  function closeButton(className, label, onClick) {
    const close = document.createElement("button");
    close.type = "button";
    close.className = className;
    close.textContent = "×";
    close.setAttribute("aria-label", label);
    close.addEventListener("click", onClick);
    return close;
  }

  function toast(code, message, action, room) {
    const item = document.createElement("li");
    item.className = "toast";
    item.dataset.code = code;
    item.setAttribute("role", "alert");
    const title = document.createElement("strong");
    title.textContent = code;
    const body = document.createElement("span");
    const where = [action && `action ${action}`, room && `room ${room}`].filter(Boolean).join(", ");
    body.textContent = where ? `${message} (${where})` : message;
    item.append(title, body, closeButton("ghost", "Dismiss", () => item.remove()));
    $("errors").append(item);
    setTimeout(() => item.remove(), TOAST_MS);
  }

  // ---------------------------------------------------------------------------------------
  // Login

  function slugify(name) {
    const slug = name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9_.@-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 64);
    return slug || `user-${newClientMsgId().slice(0, 6).toLowerCase()}`;
  }

  function decodeClaims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const binary = atob(part + "=".repeat((4 - (part.length % 4)) % 4));
      const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (err) {
      return null;
    }
  }

  function normaliseEndpoint(raw) {
    let url;
    try {
      url = new URL(raw);
    } catch (err) {
      return null;
    }
    if (url.protocol === "https:") url.protocol = "wss:";
    else if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol !== "ws:" && url.protocol !== "wss:") return null;
    url.searchParams.delete("token");
    return url.toString();
  }

  function readLogin() {
    const rawUrl = $("url").value.trim();
    const token = $("token").value.trim();
    if (rawUrl || token) {
      const url = normaliseEndpoint(rawUrl);
      if (!url) throw new Error("Enter a ws:// or wss:// URL for the endpoint.");
      if (!token) throw new Error("Paste a token for that endpoint.");
      const claims = decodeClaims(token);
      if (!claims || typeof claims.sub !== "string") throw new Error("That token is not a JWT with a 'sub' claim.");
      const name = typeof claims.name === "string" && claims.name ? claims.name : claims.sub;
      const mod = claims.mod === "*" || Array.isArray(claims.mod) ? claims.mod : null;
      return { mode: "remote", userId: claims.sub, name, url, token, exp: Number(claims.exp) || 0, dm: claims.dm !== false, mod };
    }
    const name = $("name").value.trim();
    if (!name) throw new Error("Pick a display name.");
    const userId = $("user-id").value.trim() || slugify(name);
    if (!USER_RE.test(userId)) throw new Error("User ids use letters, digits and _ . @ - (up to 64).");
    const modText = $("mod-rooms").value.trim();
    const modRooms = modText.split(",").map((r) => r.trim()).filter(Boolean);
    if (modText !== "*" && !modRooms.every((r) => ROOM_RE.test(r))) {
      throw new Error("Moderated rooms: room names (letters, digits and _ . -) separated by commas, or *.");
    }
    const mod = modText === "*" ? "*" : modRooms.length ? modRooms : null;
    return { mode: "local", userId, name, url: "", token: "", exp: 0, mod };
  }

  function onLogin(event) {
    event.preventDefault();
    const error = $("login-error");
    error.hidden = true;
    let session;
    try {
      session = readLogin();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      return;
    }
    state.session = session;
    state.names.set(session.userId, session.name);
    state.wanted = true;
    state.attempt = 0;
    $("login-view").hidden = true;
    $("chat-view").hidden = false;
    $("disconnect").hidden = false;
    renderAll();
    $("room-input").focus();
    connect();
  }

  // ---------------------------------------------------------------------------------------
  // Wiring

  function onJoin(event) {
    event.preventDefault();
    const input = $("room-input");
    const name = input.value.trim();
    if (!ROOM_RE.test(name)) {
      toast("bad_request", "Room names use letters, digits and _ . - (up to 64).", "join");
      return;
    }
    input.value = "";
    addRoom(name);
  }

  function onSend(event) {
    event.preventDefault();
    const input = $("message-input");
    const text = input.value;
    if (!text.trim() || !state.active) return;
    input.value = "";
    autoGrow(input);
    if (state.editing) {
      const { room, seq } = state.editing;
      stopEdit();
      send({ action: "edit", room, seq, text });
      return;
    }
    sendMessage(text);
  }

  function autoGrow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, 160)}px`;
  }

  function init() {
    $("login-form").addEventListener("submit", onLogin);
    $("join-form").addEventListener("submit", onJoin);
    $("send-form").addEventListener("submit", onSend);
    $("disconnect").addEventListener("click", signOut);
    $("notice-close").addEventListener("click", () => {
      $("notice").hidden = true;
    });
    $("load-older").addEventListener("click", () => requestOlder(state.rooms.get(state.active)));
    $("scroller").addEventListener("scroll", () => {
      if ($("scroller").scrollTop < NEAR_TOP_PX) requestOlder(state.rooms.get(state.active));
      const room = state.rooms.get(state.active);
      if (room && seesLatest(room)) scheduleRead(room);
    });
    const input = $("message-input");
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("send-form").requestSubmit();
      } else if (event.key === "ArrowUp" && input.value === "" && state.active) {
        // As chat users expect: up-arrow in an empty composer edits one's last message.
        const last = lastOwnMessage(state.rooms.get(state.active));
        if (last) {
          event.preventDefault();
          startEdit(last);
        }
      } else if (event.key === "Escape" && state.editing) {
        stopEdit();
        input.value = "";
      }
    });
    input.addEventListener("input", () => {
      autoGrow(input);
      if (input.value.trim()) noteTyping();
    });
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        reconnectNow();
        const room = state.rooms.get(state.active);
        if (room && seesLatest(room)) scheduleRead(room);
      }
    });
    const params = new URLSearchParams(location.search);
    if (params.get("name")) $("name").value = params.get("name");
    $("name").focus();
  }

  // A small handle for tests and for debugging from the console.
  window.dynamowave = Object.freeze({
    /** Drops the socket as a network failure would; with hold, stays offline until resume(). */
    dropConnection(options = {}) {
      state.holdReconnect = Boolean(options.hold);
      if (state.ws) state.ws.close(4000, "dropped by the client");
    },
    resume() {
      state.holdReconnect = false;
      state.attempt = 0;
      if (state.wanted && !state.ws) connect();
    },
    isOpen: socketOpen,
    recoveryMark(name) {
      const room = state.rooms.get(name);
      return room ? recoveryMark(room) : null;
    },
  });

  init();
})();
