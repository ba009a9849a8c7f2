// react live page: capture (microphone or replay ticks) -> WebSocket -> jitter buffer -> canvas.
// Wire format: reactcli/live/protocol.py (32-byte little-endian header + float32 payload).
import { FaceRenderer } from "/static/render.js";

const MAGIC = [0x52, 0x4c, 0x56, 0x31]; // "RLV1"
const HEADER = 32;
const TYPE = { AUDIO: 1, TICK: 2, FRAMES: 16 };
const FACE_INPUT = 52 + 16;
const JITTER_FRAMES = 2; // a frame is shown 2 frame periods after its speaker frame was captured
const TRACE_FRAMES = 250;
const HISTORY = 1500; // per-frame figures kept for the stats (60 s): a long session must not grow them

const $ = (id) => document.getElementById(id);
const stats = {
  received: 0, shown: 0, dropped: 0, latencies: [], serverMs: [], shownTimes: [], errors: [], ready: null,
  mode: null, ended: false,
};
window.liveStats = stats; // read by tests and handy in the console

function record(list, value) {
  list.push(value);
  if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
}

let info = null;
let renderer = null;
let ws = null;
let run = null; // the running session's state

// A notice is about the page (mode null) or about one mode ("mic", "replay"): the webcam's state
// means nothing in replay, which feeds the clip's own speaker face.
function notice(text, mode = null) {
  if ([...$("notices").children].some((li) => li.textContent === text)) return;
  const li = document.createElement("li");
  li.textContent = text;
  if (mode) li.dataset.mode = mode;
  $("notices").appendChild(li);
  layout();
}

function setStatus(text, state = "ok") {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function encode(type, seq, frame, frames, dim, tMs, payload) {
  const buf = new ArrayBuffer(HEADER + 4 * frames * dim);
  const dv = new DataView(buf);
  MAGIC.forEach((b, i) => dv.setUint8(i, b));
  dv.setUint8(4, 1); // version
  dv.setUint8(5, type);
  dv.setUint16(6, 0, true);
  dv.setUint32(8, seq, true);
  dv.setUint32(12, frame, true);
  dv.setUint16(16, frames, true);
  dv.setUint16(18, dim, true);
  dv.setFloat64(20, tMs, true);
  dv.setFloat32(28, 0, true);
  for (let i = 0; payload && i < payload.length; i++) dv.setFloat32(HEADER + 4 * i, payload[i], true);
  return buf;
}

function decode(buf) {
  const dv = new DataView(buf);
  for (let i = 0; i < 4; i++) if (dv.getUint8(i) !== MAGIC[i]) throw new Error("bad magic from server");
  const frames = dv.getUint16(16, true), dim = dv.getUint16(18, true);
  const values = new Float32Array(frames * dim);
  for (let i = 0; i < values.length; i++) values[i] = dv.getFloat32(HEADER + 4 * i, true);
  return {
    type: dv.getUint8(5), seq: dv.getUint32(8, true), frame: dv.getUint32(12, true), frames, dim,
    tMs: dv.getFloat64(20, true), aux: dv.getFloat32(28, true), values,
  };
}

function percentile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function init() {
  info = await (await fetch("/api/info")).json();
  renderer = await FaceRenderer.load();
  for (let k = 0; k < info.samples; k++) $("sample").add(new Option(`#${k + 1}`, String(k)));
  for (const c of info.clips) $("clip").add(new Option(`${c.index}: ${c.speaker}`, String(c.index)));
  if (!info.replay) {
    $("mode").querySelector('option[value="replay"]').disabled = true;
    $("clip-label").classList.add("hidden");
  }
  if (!info.mic) {
    $("mode").querySelector('option[value="mic"]').disabled = true;
    notice(`microphone mode unavailable: ${info.mic_problem}`);
    if (info.replay) $("mode").value = "replay";
  }
  if (info.camera_problem) {
    $("camera").disabled = true;
    notice(`webcam face off (${info.camera_problem})`, "mic");
  }
  $("mode").addEventListener("change", layout);
  $("start").addEventListener("click", () => start().catch(fail));
  $("stop").addEventListener("click", () => stop("stopped"));
  layout();
  $("fps-note").textContent = `${info.fps} fps`;
  if (info.personality) {
    notice(`personalised model: the listener's traits are ${info.personality.mic} in microphone mode`, "mic");
    notice(`personalised model: the listener's traits are ${info.personality.replay}`, "replay");
  }
  const neutral = new Float32Array(58);
  neutral[52] = Math.PI; // rx about pi turns FaceVerse's camera-style frame upright (face_model.py)
  renderer.draw($("listener"), neutral);
  $("start").disabled = !(info.mic || info.replay);
  setStatus("ready: pick a mode and press start", "idle");
}

function layout() {
  const mode = $("mode").value;
  const replay = mode === "replay";
  for (const li of $("notices").children) li.classList.toggle("hidden", Boolean(li.dataset.mode) && li.dataset.mode !== mode);
  $("clip-label").classList.toggle("hidden", !replay);
  $("truth-panel").classList.toggle("hidden", !replay);
  $("speaker-panel").classList.toggle("hidden", !replay);
  $("camera-label").classList.toggle("hidden", replay);
}

function fail(err) {
  stats.errors.push(String(err && err.message ? err.message : err));
  setStatus(`error: ${stats.errors[stats.errors.length - 1]}`, "error");
  stop(null);
}

async function start() {
  stop(null);
  Object.assign(stats, {
    received: 0, shown: 0, dropped: 0, latencies: [], serverMs: [], shownTimes: [], ready: null, ended: false,
  });
  const mode = $("mode").value;
  stats.mode = mode;
  const clip = Number($("clip").value || 0);
  let face = null;
  if (mode === "mic" && $("camera").checked) face = await startCamera().catch((e) => {
    notice(`webcam face off (${e.message}): the speaker's face is held at the training mean`, "mic");
    return null;
  });
  if (mode === "mic" && !face && !info.camera_problem) {
    notice("webcam face off: the speaker's face is held at the training mean", "mic");
  }
  run = {
    mode, clip, face, seq: 0, frame: 0, capture: new Map(), buffer: [], trace: [], truthTrace: [],
    timers: [], audio: null, error: null,
  };
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const opened = new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("WebSocket failed to open"));
  });
  ws.onmessage = (ev) => onMessage(ev.data);
  ws.onclose = (ev) => closed(ev);
  await opened;
  ws.send(JSON.stringify({ type: "start", mode, clip, face: Boolean(face) }));
  $("start").disabled = true;
  $("stop").disabled = false;
  requestAnimationFrame(drawLoop);
}

function onMessage(data) {
  if (typeof data === "string") {
    const msg = JSON.parse(data);
    if (msg.type === "ready") {
      stats.ready = msg;
      setStatus(`running: ${msg.mode} at ${msg.fps} fps, session ${msg.session}, seed ${msg.seed}, ` +
        `speaker face: ${msg.speaker_face}`);
      if (msg.personality) notice(`listener personality: ${msg.personality}`, msg.mode);
      (msg.mode === "mic" ? startMic() : startReplay()).catch(fail);
    } else if (msg.type === "error") {
      stats.errors.push(msg.message);
      if (run) run.error = msg.message;
      setStatus(`server: ${msg.message}`, "error");
    } else if (msg.type === "end") {
      stats.ended = true;
      setStatus(`clip finished: ${msg.frames} frames`, "idle");
    }
    return;
  }
  if (!run) return;
  const msg = decode(data);
  if (msg.type !== TYPE.FRAMES) return;
  const now = performance.now();
  record(stats.serverMs, msg.aux / msg.frames);
  const period = 1000 / info.fps;
  for (let j = 0; j < msg.frames; j++) {
    const frame = msg.frame + j;
    const captured = run.capture.get(frame);
    run.capture.delete(frame);
    stats.received++;
    if (captured === undefined) continue;
    const due = captured + JITTER_FRAMES * period;
    if (now > due + period) { stats.dropped++; continue; } // missed its slot: dropped, counted
    run.buffer.push({ frame, captured, due, row: msg.values.subarray(j * msg.dim, (j + 1) * msg.dim) });
  }
  while (run.buffer.length > 2 * info.fps) { run.buffer.shift(); stats.dropped++; } // never unbounded
}

function drawLoop() {
  if (!run) return;
  const now = performance.now();
  let item = null;
  while (run.buffer.length && run.buffer[0].due <= now) {
    if (item) stats.dropped++; // two frames due in one display tick: show the newer
    item = run.buffer.shift();
  }
  if (item) show(item, now);
  updateStats();
  requestAnimationFrame(drawLoop);
}

function show(item, now) {
  const k = Number($("sample").value || 0);
  const per = info.frame_values;
  const reaction = item.row.subarray(k * per, (k + 1) * per);
  renderer.draw($("listener"), reaction.subarray(0, info.face_dim));
  run.trace.push(Array.from(reaction.subarray(info.face_dim)));
  if (stats.ready && stats.ready.reference) {
    const truth = item.row.subarray(info.samples * per, (info.samples + 1) * per);
    renderer.draw($("truth"), truth.subarray(0, info.face_dim));
    run.truthTrace.push(Array.from(truth.subarray(info.face_dim)));
  }
  if (run.trace.length > TRACE_FRAMES) run.trace.shift();
  if (run.truthTrace.length > TRACE_FRAMES) run.truthTrace.shift();
  drawTrace();
  stats.shown++;
  record(stats.latencies, now - item.captured);
  record(stats.shownTimes, now);
  $("listener").dataset.frame = String(item.frame);
}

const TRACES = [
  ["valence", "#6cf"], ["arousal", "#fc6"], ["AU12", "#7e7"], ["AU4", "#e77"], ["AU25", "#c9f"],
];

function drawTrace() {
  const canvas = $("trace");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const w = canvas.width, h = canvas.height;
  const xOf = (i) => (i / (TRACE_FRAMES - 1)) * w;
  // valence in [-1, 1], arousal and AUs in [0, 1]: both mapped onto [-1, 1] on screen
  const yOf = (v, signed) => h / 2 - (signed ? v : 2 * v - 1) * (h / 2 - 6);
  ctx.strokeStyle = "#333";
  ctx.beginPath(); ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2); ctx.stroke();
  const legend = [];
  for (const [name, color] of TRACES) {
    const idx = info.emotion_columns.indexOf(name);
    if (idx < 0) continue;
    const signed = name === "valence";
    for (const [series, dash] of [[run.trace, []], [run.truthTrace, [3, 3]]]) {
      if (!series.length) continue;
      ctx.setLineDash(dash);
      ctx.strokeStyle = color;
      ctx.beginPath();
      series.forEach((row, i) => (i ? ctx.lineTo(xOf(i), yOf(row[idx], signed)) : ctx.moveTo(xOf(i), yOf(row[idx], signed))));
      ctx.stroke();
    }
    legend.push(name);
  }
  ctx.setLineDash([]);
  const dashed = run.truthTrace.length ? " (dashed: ground truth)" : ""; // replay only: mic has none
  $("trace-legend").textContent = `emotion, last 10 s: ${legend.join(", ")}${dashed}`;
}

function updateStats() {
  const lat = stats.latencies.slice(-250);
  const server = stats.serverMs.slice(-250);
  if (lat.length) $("stat-latency").textContent =
    `p50 ${percentile(lat, 0.5).toFixed(0)} ms, p95 ${percentile(lat, 0.95).toFixed(0)} ms`;
  if (server.length) $("stat-server").textContent =
    `${(server.reduce((a, b) => a + b, 0) / server.length).toFixed(1)} ms (p95 ${percentile(server, 0.95).toFixed(1)})`;
  $("stat-frames").textContent = `${stats.shown} / ${stats.received}`;
  const recent = stats.shownTimes.slice(-100).filter((x) => x > performance.now() - 2000); // <= 2 s at 25 or 30 fps
  if (recent.length > 1) $("stat-fps").textContent = `${((recent.length - 1) * 1000 / (recent[recent.length - 1] - recent[0])).toFixed(1)} fps`;
  $("stat-dropped").textContent = String(stats.dropped);
}

function send(type, frames, dim, tMs, payload) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  run.capture.set(run.frame, tMs);
  ws.send(encode(type, run.seq, run.frame, frames, dim, tMs, payload));
  run.seq++;
  run.frame += frames;
}

async function startMic() {
  const ctx = new AudioContext({ sampleRate: info.rate });
  await ctx.audioWorklet.addModule("/static/capture-worklet.js");
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "chunker", {
    processorOptions: { width: info.chunk, fps: info.fps, targetRate: info.rate },
  });
  const sink = ctx.createGain();
  sink.gain.value = 0; // the graph must reach the destination to be pulled; we do not play the mic back
  source.connect(node).connect(sink).connect(ctx.destination);
  node.port.onmessage = (ev) => {
    if (!run) return;
    let payload = ev.data;
    let dim = info.chunk;
    if (run.face) {
      const joined = new Float32Array(info.chunk + FACE_INPUT);
      joined.set(payload);
      joined.set(run.face.latest(), info.chunk);
      payload = joined;
      dim = joined.length;
    }
    send(TYPE.AUDIO, 1, dim, performance.now(), payload);
  };
  run.audio = { ctx, stream };
  if (ctx.sampleRate !== info.rate) notice(`audio context runs at ${ctx.sampleRate} Hz; resampling to ${info.rate} Hz`);
}

async function startReplay() {
  const clip = info.clips[run.clip];
  const video = $("speaker-video"), audio = $("speaker-audio");
  video.removeAttribute("src");
  audio.removeAttribute("src");
  if (clip.video) video.src = `/api/clips/${clip.index}/video`; else notice(`clip ${clip.index} has no mp4 video to play`);
  if (clip.audio) audio.src = `/api/clips/${clip.index}/audio`;
  const plays = [];
  if (clip.video) plays.push(video.play().catch(() => notice("the browser did not start the speaker video")));
  if (clip.audio) plays.push(audio.play().catch(() => notice("the browser did not start the speaker audio")));
  await Promise.all(plays);
  const t0 = performance.now();
  const period = 1000 / info.fps;
  const total = stats.ready.frames;
  const timer = setInterval(() => {
    if (!run || run.frame >= total) { clearInterval(timer); return; }
    // speaker frame f has been "captured" once the clip has played past its end: t0 + (f + 1) period
    const due = Math.min(total, Math.floor((performance.now() - t0) / period));
    while (run.frame < due) send(TYPE.TICK, 1, 0, t0 + (run.frame + 1) * period, null);
  }, 5);
  run.timers.push(timer);
}

async function startCamera() {
  const vision = await import("/mediapipe/vision_bundle.mjs");
  const files = await vision.FilesetResolver.forVisionTasks("/mediapipe/wasm");
  const landmarker = await vision.FaceLandmarker.createFromOptions(files, {
    baseOptions: { modelAssetPath: "/api/face_landmarker.task" },
    outputFaceBlendshapes: true, outputFacialTransformationMatrixes: true, runningMode: "VIDEO", numFaces: 1,
  });
  const video = document.createElement("video");
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
  video.muted = true;
  await video.play();
  // 52 blendshapes, then the 16 values of the pose matrix as MediaPipe gives them (column-major);
  // a negative first score tells the server "no face" (it holds the training-mean face)
  const last = new Float32Array(FACE_INPUT);
  last[0] = -1;
  [0, 5, 10, 15].forEach((i) => { last[52 + i] = 1; });
  const loop = () => {
    if (state.stopped) return;
    const res = landmarker.detectForVideo(video, performance.now());
    if (res.faceBlendshapes && res.faceBlendshapes.length) {
      res.faceBlendshapes[0].categories.forEach((c) => { if (c.index < 52) last[c.index] = c.score; });
    } else {
      last[0] = -1; // the face was lost: say so, rather than send the last face seen forever
    }
    if (res.facialTransformationMatrixes && res.facialTransformationMatrixes.length) {
      last.set(res.facialTransformationMatrixes[0].data.slice(0, 16), 52);
    }
    requestAnimationFrame(loop);
  };
  const state = { latest: () => last, video, stopped: false };
  setTimeout(loop, 0);
  return state;
}

// The server closed the socket (it refused or shed the session, or it stopped): say why, and
// leave the page ready for another start.
function closed(ev) {
  if (!run) return; // a close we asked for
  const why = run.error ? `server: ${run.error}` : `connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`;
  stop(null);
  setStatus(why, ev.code === 1000 && !stats.errors.length ? "idle" : "error");
}

function stop(reason) {
  if (run) {
    run.timers.forEach(clearInterval);
    if (run.audio) { run.audio.stream.getTracks().forEach((t) => t.stop()); run.audio.ctx.close(); }
    if (run.face) {
      run.face.stopped = true;
      if (run.face.video.srcObject) run.face.video.srcObject.getTracks().forEach((t) => t.stop());
    }
    $("speaker-video").pause();
    $("speaker-audio").pause();
  }
  run = null;
  if (ws) { ws.onclose = null; ws.close(1000, "client stopped"); ws = null; }
  $("start").disabled = !(info && (info.mic || info.replay));
  $("stop").disabled = true;
  if (reason) setStatus(reason, "idle");
}

init().catch((e) => setStatus(`could not load the page: ${e.message}`, "error"));
