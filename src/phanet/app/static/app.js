// The page of `phanet app`: sends pictures, videos and webcam frames to the API and draws its rows.
"use strict";

const COLORS = { face: "#28dc50", s2: "#e62828", s3: "#fadc00" };
const state = { info: null, csvs: [], webcam: null };
const $ = (selector, root = document) => root.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function setStatus(text) {
  $("#status").textContent = text;
}

const percent = (value) => (value === null || value === undefined ? "" : `${(100 * value).toFixed(1)} %`);
const angle = (pose) => (Number.isNaN(Number(pose)) ? pose : `${Number(pose) > 0 ? "+" : ""}${Number(pose)}°`);

// ------------------------------------------------------------------------------------------ the API

async function post(url, body, type) {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, { method: "POST", body, headers: { "Content-Type": type || "application/octet-stream" } });
    if (response.status === 429 && attempt < 30) {
      setStatus("The server is busy; waiting for a place in its queue…");
      await new Promise((done) => setTimeout(done, 1000 * Number(response.headers.get("Retry-After") || 1)));
      continue;
    }
    let answer;
    try {
      answer = await response.json();
    } catch {
      answer = { error: `${response.status} ${response.statusText}` };
    }
    if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
    return answer;
  }
}

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  state.info = info;
  const list = $("#model-info");
  list.replaceChildren();
  const entries = [
    ["Trained on", info.trained_on || "not recorded"],
    ["Expressions", info.expressions.join(", ")],
    ["Poses (yaw)", info.poses.length ? info.poses.map(angle).join(", ") : "none"],
    ["Input size", `${info.input_size} × ${info.input_size} px`],
    ["Architecture", info.arch],
    ["Preset", info.preset],
    ["Face detector", `${info.detector} (margin ${info.margin}, faces from ${info.min_face} px)`],
  ];
  for (const [name, value] of entries) list.append(element("dt", { text: name }), element("dd", { text: value }));
  const limits = info.limits;
  $("#limits").textContent =
    `Pictures up to ${limits.max_bytes_text} and ${(limits.max_pixels / 1e6).toFixed(0)} megapixels (longer side ${limits.max_side} px); ` +
    `videos up to ${limits.max_video_bytes_text} and ${limits.max_video_seconds} s, ${limits.max_video_frames} frames predicted.`;
}

// ------------------------------------------------------------------------------------------ drawing

function drawRows(context, rows, scale) {
  const width = Math.max(2, Math.round(context.canvas.width / 250));
  context.lineWidth = width;
  context.font = `${Math.max(12, 5 * width + 4)}px system-ui, sans-serif`;
  rows.forEach((row) => {
    if (row.status !== "ok") return;
    for (const [prefix, color] of [["s2", COLORS.s2], ["s3", COLORS.s3]]) {
      const [x0, y0, x1, y1] = ["x0", "y0", "x1", "y1"].map((k) => row[`${prefix}_${k}`]);
      if ([x0, y0, x1, y1].every((v) => typeof v === "number")) {
        context.strokeStyle = color;
        context.strokeRect(x0 * scale, y0 * scale, (x1 - x0) * scale, (y1 - y0) * scale);
      }
    }
    context.strokeStyle = COLORS.face;
    context.strokeRect(row.face_x * scale, row.face_y * scale, row.face_w * scale, row.face_h * scale);
    const label = `${row.face + 1}: ${row.expression} ${percent(row.expression_prob)}`;
    const top = Math.max(0, row.face_y * scale - 6 * width - 8);
    context.fillStyle = "rgba(0, 0, 0, 0.7)";
    context.fillRect(row.face_x * scale, top, context.measureText(label).width + 8, 5 * width + 10);
    context.fillStyle = COLORS.face;
    context.fillText(label, row.face_x * scale + 4, top + 5 * width + 3);
  });
}

function bars(names, values, kind, format) {
  const best = kind === "weights" ? null : Math.max(...values.filter((v) => typeof v === "number"));
  const list = element("div", { class: `bars ${kind}` });
  names.forEach((name, i) => {
    const value = values[i];
    const fill = element("span", { class: "fill" });
    fill.style.width = `${Math.max(0, Math.min(1, value || 0)) * 100}%`;
    const bar = element(
      "div",
      { class: value === best ? "bar top" : "bar", "data-class": name, "data-value": String(value) },
      element("span", { class: "label", text: format ? format(name) : name, title: name }),
      element("span", { class: "track" }, fill),
      element("span", { class: "value", text: value === null ? "n/a" : kind === "weights" ? value.toFixed(3) : percent(value) }),
    );
    list.append(bar);
  });
  return list;
}

function facePanel(row) {
  const info = state.info;
  const panel = element("div", { class: "face", "data-face": String(row.face) });
  const pose = info.poses.length ? ` · yaw ${angle(row.pose)} (${percent(row.pose_prob)})` : "";
  panel.append(element("h4", { text: `Face ${row.face + 1}: ${row.expression} ${percent(row.expression_prob)}${pose}` }));
  panel.append(element("h5", { text: "Expression" }));
  panel.append(bars(info.expressions, info.expressions.map((e) => row[`prob_${e}`]), "expression"));
  if (info.poses.length) {
    panel.append(element("h5", { text: "Pose (yaw)" }));
    panel.append(bars(info.poses, info.poses.map((p) => row[`pose_prob_${p}`]), "pose", angle));
  }
  panel.append(element("h5", { text: "Scale weights c1..c3 and task weights λe, λp" }));
  panel.append(bars(["c1", "c2", "c3", "λe", "λp"], ["c1", "c2", "c3", "lambda_e", "lambda_p"].map((k) => row[k]), "weights"));
  return panel;
}

function facesOf(rows, target) {
  target.replaceChildren();
  const faces = rows.filter((row) => row.status === "ok");
  for (const row of faces) target.append(facePanel(row));
  if (!faces.length) {
    const status = rows.length ? rows[0].status.replace("_", " ") : "no rows";
    target.append(element("p", { class: "none", text: status === "no face" ? "No face found." : `Status: ${status}.` }));
  }
}

function table(rows) {
  const columns = state.info.columns;
  const head = element("tr");
  for (const column of columns) head.append(element("th", { text: column }));
  const body = element("tbody");
  for (const row of rows) {
    const line = element("tr");
    for (const column of columns) {
      const value = row[column];
      line.append(element("td", { text: typeof value === "number" && !Number.isInteger(value) ? value.toFixed(4) : value ?? "" }));
    }
    body.append(line);
  }
  return element("details", {}, element("summary", { text: `Table (${rows.length} row${rows.length === 1 ? "" : "s"}, the columns of phanet predict)` }),
    element("div", { class: "table-wrap" }, element("table", {}, element("thead", {}, head), body)));
}

function download(text, name) {
  const link = element("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

function csvButton(answer) {
  const button = element("button", { class: "button quiet csv", type: "button", text: "Download CSV" });
  button.addEventListener("click", () => download(answer.csv, `${answer.file.replace(/\.[^.]*$/, "")}.csv`));
  return button;
}

function card(name) {
  const article = element("article", { class: "result", "data-file": name, "data-state": "waiting" });
  article.append(element("h3", {}, element("span", { text: name }), element("span", { class: "meta", text: "waiting…" })));
  $("#results").prepend(article);
  return article;
}

function fail(article, error) {
  article.dataset.state = "failed";
  article.classList.add("failed");
  $(".meta", article).textContent = "refused";
  article.append(element("p", { class: "error", text: error.message }));
}

function keepCsv(answer) {
  state.csvs.push(answer.csv);
  $("#download-all").disabled = false;
}

// ------------------------------------------------------------------------------------------ photos

async function showPhoto(file) {
  const article = card(file.name);
  try {
    const answer = await post(`/api/predict?name=${encodeURIComponent(file.name)}`, file, file.type);
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 720 / bitmap.width);
    const canvas = element("canvas", { class: "picture" });
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    const context = canvas.getContext("2d");
    context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    drawRows(context, answer.rows, canvas.width / answer.width);
    const faces = element("div", { class: "faces" });
    facesOf(answer.rows, faces);
    const count = answer.rows.filter((r) => r.status === "ok").length;
    $(".meta", article).textContent = `${answer.width} × ${answer.height} px, ${count} face${count === 1 ? "" : "s"}`;
    $("h3", article).append(csvButton(answer));
    article.append(element("div", { class: "result-body" }, element("div", { class: "stage" }, canvas), faces), table(answer.rows));
    article.dataset.state = "done";
    keepCsv(answer);
  } catch (error) {
    fail(article, error);
  }
}

async function photos(files) {
  const list = [...files];
  for (const [i, file] of list.entries()) {
    setStatus(`Predicting ${i + 1} of ${list.length}: ${file.name}`);
    await showPhoto(file);
  }
  setStatus(`Done: ${list.length} picture${list.length === 1 ? "" : "s"}.`);
}

// ------------------------------------------------------------------------------------------ video

async function video(file) {
  const article = card(file.name);
  setStatus(`Predicting the frames of ${file.name}…`);
  try {
    const answer = await post(`/api/video?name=${encodeURIComponent(file.name)}`, file, file.type);
    const player = element("video", { controls: "", muted: "", playsinline: "" });
    player.src = URL.createObjectURL(file);
    const overlay = element("canvas", { class: "overlay" });
    const faces = element("div", { class: "faces" });
    const frames = [...new Set(answer.rows.map((r) => r.frame))].sort((a, b) => a - b);
    const shown = { frame: null };
    const update = () => {
      const current = Math.floor(player.currentTime * answer.fps + 1e-6);
      const frame = frames.filter((f) => f <= current).pop() ?? frames[0];
      overlay.width = player.clientWidth;
      overlay.height = player.clientHeight;
      const context = overlay.getContext("2d");
      context.clearRect(0, 0, overlay.width, overlay.height);
      const rows = answer.rows.filter((r) => r.frame === frame);
      drawRows(context, rows, overlay.width / answer.width);
      if (frame !== shown.frame) {
        shown.frame = frame;
        facesOf(rows, faces);
        faces.prepend(element("p", { class: "note", text: `Frame ${frame}` }));
      }
    };
    player.addEventListener("loadeddata", update);
    player.addEventListener("timeupdate", update);
    player.addEventListener("seeked", update);
    const count = answer.rows.filter((r) => r.status === "ok").length;
    $(".meta", article).textContent =
      `${answer.width} × ${answer.height} px, ${answer.predicted_frames} of ${answer.frames} frames predicted ` +
      `(every ${answer.every_nth_frame}), ${count} faces`;
    $("h3", article).append(csvButton(answer));
    article.append(element("div", { class: "result-body" }, element("div", { class: "stage" }, player, overlay), faces), table(answer.rows));
    article.dataset.state = "done";
    keepCsv(answer);
    setStatus(`Done: ${file.name}.`);
  } catch (error) {
    fail(article, error);
    setStatus(`Refused: ${file.name}.`);
  }
}

// ------------------------------------------------------------------------------------------ webcam

async function startWebcam() {
  const camera = $("#camera");
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  camera.srcObject = stream;
  await camera.play();
  $("#live").hidden = false;
  $("#webcam").textContent = "Stop webcam";
  const webcam = { stream, frames: 0 };
  state.webcam = webcam;
  const grab = element("canvas");
  while (state.webcam === webcam) {
    grab.width = camera.videoWidth;
    grab.height = camera.videoHeight;
    grab.getContext("2d").drawImage(camera, 0, 0);
    const blob = await new Promise((done) => grab.toBlob(done, "image/jpeg", 0.9));
    let answer;
    try {
      answer = await post("/api/predict?name=webcam", blob, "image/jpeg");
    } catch (error) {
      setStatus(`Webcam: ${error.message}`);
      await new Promise((done) => setTimeout(done, 1000));
      continue;
    }
    if (state.webcam !== webcam) break;
    const overlay = $("#camera-overlay");
    overlay.width = camera.clientWidth;
    overlay.height = camera.clientHeight;
    const context = overlay.getContext("2d");
    context.clearRect(0, 0, overlay.width, overlay.height);
    drawRows(context, answer.rows, overlay.width / answer.width);
    facesOf(answer.rows, $("#live-faces"));
    webcam.frames += 1;
    $("#live").dataset.frames = String(webcam.frames);
    setStatus(`Webcam: ${webcam.frames} frame${webcam.frames === 1 ? "" : "s"} predicted.`);
  }
}

function stopWebcam() {
  if (!state.webcam) return;
  state.webcam.stream.getTracks().forEach((track) => track.stop());
  state.webcam = null;
  $("#live").hidden = true;
  $("#webcam").textContent = "Start webcam";
}

// ------------------------------------------------------------------------------------------ wiring

function main() {
  loadInfo().catch((error) => setStatus(`Could not read the model information: ${error.message}`));
  $("#photos").addEventListener("change", (event) => {
    photos(event.target.files).finally(() => { event.target.value = ""; });
  });
  $("#video").addEventListener("change", (event) => {
    if (event.target.files.length) video(event.target.files[0]).finally(() => { event.target.value = ""; });
  });
  $("#webcam").addEventListener("click", () => {
    if (state.webcam) stopWebcam();
    else startWebcam().catch((error) => { setStatus(`Webcam: ${error.message}`); stopWebcam(); });
  });
  $("#download-all").addEventListener("click", () => {
    const [first, ...rest] = state.csvs;
    const body = rest.map((text) => text.slice(text.indexOf("\n") + 1)).join("");
    download(first + body, "phanet-predictions.csv");
  });
  $("#clear").addEventListener("click", () => {
    $("#results").replaceChildren();
    state.csvs = [];
    $("#download-all").disabled = true;
    setStatus("");
  });
}

main();
