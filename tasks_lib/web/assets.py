"""The review pages' stylesheet and script, served from /static (no build step, no CDN, vanilla JS).

They are files of their own, not inline, so the pages' Content-Security-Policy can forbid every inline
script and style: text written by an agent cannot run even if an escape were ever missed.
"""

from __future__ import annotations

import hashlib

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
a{color:#0969da;text-decoration:none} a:hover{text-decoration:underline}
header,main,footer{max-width:1500px;margin:auto;padding:0 20px}
header{border-bottom:1px solid #d0d7de;padding-bottom:8px}
nav{padding:8px 0;color:#57606a} nav a{margin-right:12px}
h1{font-size:20px;margin:8px 0} h2{font-size:16px;margin:20px 0 8px}
.meta{color:#57606a} .meta b{color:#1f2328;font-weight:600}
.status{display:inline-block;padding:1px 8px;border-radius:10px;background:#eaeef2;font-size:12px}
.st-awaiting_review{background:#fff8c5} .st-accepted,.st-completed{background:#dafbe1}
.st-failed,.st-crashed,.st-rejected{background:#ffebe9} .st-running,.st-pending,.st-delivering{background:#ddf4ff}
.banner{padding:8px 12px;border-radius:6px;margin:12px 0}
.banner.error{background:#ffebe9;border:1px solid #ff8182} .banner.info{background:#ddf4ff;border:1px solid #54aeff}
section{margin:20px 0}
table.list{border-collapse:collapse;width:100%} table.list th,table.list td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
table.list th{font-weight:600;color:#57606a;font-size:12px} td.num{text-align:right;white-space:nowrap}
td.task{max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.add{color:#1a7f37} .del-n{color:#cf222e} .ok{color:#1a7f37} .err{color:#cf222e}
form.filters{display:flex;gap:8px;flex-wrap:wrap;align-items:end;margin:12px 0}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#57606a}
input,select,textarea,button{font:inherit}
textarea{width:100%;box-sizing:border-box;min-height:4em}
.decide{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
.decide form{border:1px solid #d0d7de;border-radius:6px;padding:10px}
.decide button{padding:4px 14px;border-radius:6px;border:1px solid #d0d7de;background:#f6f8fa;cursor:pointer}
.decide .accept button{background:#1f883d;color:#fff;border-color:#1a7f37}
.decide .reject button{color:#cf222e}
#pending{margin:6px 0;padding-left:18px} #pending button{margin-left:6px;font-size:12px}
.file{border:1px solid #d0d7de;border-radius:6px;margin:10px 0;overflow:hidden}
.file>summary{padding:6px 12px;background:#f6f8fa;cursor:pointer;font:12px ui-monospace,monospace}
.file[open]>summary{border-bottom:1px solid #d0d7de}
.file .note{padding:8px 12px;color:#57606a}
table.diff{width:100%;border-collapse:collapse;font:12px/1.4 ui-monospace,monospace;table-layout:fixed}
table.diff td{padding:0 6px;vertical-align:top;white-space:pre-wrap;word-break:break-all}
table.diff td.no{width:3.5em;color:#8c959f;text-align:right;user-select:none}
table.diff td.n[data-line]{cursor:pointer} table.diff td.n[data-line]:hover{color:#0969da;background:#ddf4ff}
table.diff col.no{width:3.5em}
tr.hunk td{background:#ddf4ff;color:#0550ae}
td.del{background:#ffebe9} td.ins{background:#dafbe1}
tr.cbox td,tr.cnote td{background:#f6f8fa;padding:6px 12px;white-space:normal;font:13px system-ui,sans-serif}
tr.cnote td{border-left:3px solid #0969da}
.step{border-left:3px solid #d0d7de;padding:2px 12px;margin:6px 0}
.step>summary{cursor:pointer}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap;word-break:break-word;font-size:12px}
.summary{border:1px solid #d0d7de;border-radius:6px;padding:4px 16px}
"""

JS = r"""
(function () {
  "use strict";
  var field = document.getElementById("comments-field");
  var list = document.getElementById("pending");
  var count = document.getElementById("pending-count");
  var key = document.body.getAttribute("data-draft-key");
  var pending = [];
  try {  // comments sent back with a refused decision, else this review's drafts
    pending = JSON.parse((field && field.value !== "[]" && field.value) || sessionStorage.getItem(key) || "[]");
  } catch (err) { pending = []; }

  function sync() {
    if (!field) { return; }
    field.value = JSON.stringify(pending);
    try { sessionStorage.setItem(key, field.value); } catch (err) { /* private mode */ }
    list.textContent = "";
    pending.forEach(function (c, i) {
      var li = document.createElement("li");
      li.textContent = c.path + ":" + c.line + " \u2014 " + c.body;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "remove";
      remove.addEventListener("click", function () { pending.splice(i, 1); sync(); });
      li.appendChild(remove);
      list.appendChild(li);
    });
    count.textContent = pending.length ? " (" + pending.length + " comment" + (pending.length > 1 ? "s" : "") + ")" : "";
  }

  function openBox(cell) {
    var row = cell.parentNode;
    var next = row.nextElementSibling;
    if (next && next.classList.contains("cbox")) { next.querySelector("textarea").focus(); return; }
    var path = cell.closest("[data-path]").getAttribute("data-path");
    var line = parseInt(cell.getAttribute("data-line"), 10);
    var box = document.createElement("tr");
    box.className = "cbox";
    var td = document.createElement("td");
    td.colSpan = row.children.length;
    var label = document.createElement("div");
    label.textContent = "Comment on " + path + ":" + line;
    var text = document.createElement("textarea");
    text.setAttribute("aria-label", "comment on " + path + ":" + line);
    var add = document.createElement("button");
    add.type = "button";
    add.textContent = "Add comment";
    var cancel = document.createElement("button");
    cancel.type = "button";
    cancel.textContent = "Cancel";
    td.append(label, text, add, cancel);
    box.appendChild(td);
    row.after(box);
    text.focus();
    cancel.addEventListener("click", function () { box.remove(); });
    add.addEventListener("click", function () {
      var body = text.value.trim();
      if (!body) { text.focus(); return; }
      pending.push({path: path, line: line, body: body});
      sync();
      var note = document.createElement("tr");
      note.className = "cnote";
      var ntd = document.createElement("td");
      ntd.colSpan = td.colSpan;
      ntd.textContent = "pending comment on " + path + ":" + line + ": " + body;
      note.appendChild(ntd);
      box.replaceWith(note);
    });
  }

  document.addEventListener("click", function (event) {
    var cell = event.target.closest && event.target.closest("td.n[data-line]");
    if (cell && field) { openBox(cell); }
  });

  document.querySelectorAll("details[data-src]").forEach(function (details) {
    details.addEventListener("toggle", function () {
      if (!details.open || details.getAttribute("data-loaded")) { return; }
      details.setAttribute("data-loaded", "1");
      var target = details.querySelector(".lazy-body");
      fetch(details.getAttribute("data-src"), {credentials: "same-origin"})
        .then(function (r) { return r.text(); })
        .then(function (html) { target.innerHTML = html; })
        .catch(function () { target.textContent = "could not load this file; reload the page"; });
    });
  });

  var form = document.getElementById("request-changes");
  if (form) {
    form.addEventListener("submit", function () {
      try { sessionStorage.removeItem(key); } catch (err) { /* private mode */ }
    });
  }
  var stateUrl = document.body.getAttribute("data-state-url");
  if (stateUrl) {  // the session may still change: reload when it does (not before: drafts and scroll stay)
    var seen = document.body.getAttribute("data-state");
    setInterval(function () {
      fetch(stateUrl, {credentials: "same-origin", cache: "no-store"})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (state) {
          if (state !== null && state !== seen) { location.replace(document.body.getAttribute("data-reload-url")); }
        })
        .catch(function () { /* the app is restarting: try again */ });
    }, 2000);
  }
  sync();
})();
"""

CSS_VERSION = hashlib.sha256(CSS.encode()).hexdigest()[:12]
JS_VERSION = hashlib.sha256(JS.encode()).hexdigest()[:12]
