"""The review pages' stylesheet and script, served from /static (no build step, no CDN, vanilla JS).

They are files of their own, not inline, so the pages' Content-Security-Policy can forbid every inline
script and style: text written by an agent cannot run even if an escape were ever missed.
"""

from __future__ import annotations

import hashlib

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#fff}
a{color:#0969da;text-decoration:none} a:hover{text-decoration:underline}
header,main,footer{max-width:1600px;margin:auto;padding:0 20px}
header{border-bottom:1px solid #d0d7de;padding-bottom:6px}
nav{padding:6px 0 0;color:#57606a;font-size:13px} nav a{margin-right:12px}
nav .who{float:right} nav form.signout{display:inline;margin-left:8px} nav form.signout button{font-size:12px}
form.signin{display:flex;flex-direction:column;gap:6px;max-width:32em;margin:12px 0}
h1{font-size:19px;margin:4px 0 2px;line-height:1.3} h2{font-size:16px;margin:16px 0 8px} h3{font-size:14px}
header h1{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
header p{margin:2px 0}
#status{display:flex;flex-wrap:wrap;gap:2px 10px;align-items:baseline}
.meta{color:#57606a} .meta b{color:#1f2328;font-weight:600}
ul.facts{display:flex;flex-wrap:wrap;gap:0 18px;list-style:none;margin:2px 0;padding:0;font-size:13px}
ul.facts li{min-width:0;overflow-wrap:anywhere} ul.facts .label{color:#57606a}
details.instructions{font-size:13px} details.instructions>summary{cursor:pointer;color:#57606a}
.status{display:inline-block;padding:1px 8px;border-radius:10px;background:#eaeef2;font-size:12px}
.st-awaiting_review{background:#fff8c5} .st-accepted,.st-completed{background:#dafbe1}
.st-failed,.st-crashed,.st-rejected{background:#ffebe9} .st-running,.st-pending,.st-delivering{background:#ddf4ff}
.banner{padding:8px 12px;border-radius:6px;margin:12px 0;overflow-wrap:anywhere}
.banner.error{background:#ffebe9;border:1px solid #ff8182} .banner.info{background:#ddf4ff;border:1px solid #54aeff}
section{margin:16px 0}
.scroll{overflow-x:auto;max-width:100%}
table.list{border-collapse:collapse;width:100%} table.list th,table.list td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
table.list th{font-weight:600;color:#57606a;font-size:12px} td.num{text-align:right;white-space:nowrap}
td.task{max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.add{color:#1a7f37} .del-n{color:#cf222e} .ok{color:#1a7f37} .err{color:#cf222e}
form.filters{display:flex;gap:8px;flex-wrap:wrap;align-items:end;margin:12px 0}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#57606a}
form.filters input,form.filters select{max-width:100%;box-sizing:border-box;height:28px}
input,select,textarea,button{font:inherit}
textarea{width:100%;box-sizing:border-box;min-height:3.2em;resize:vertical}
.review{display:flex;flex-direction:column}
.side,.work{min-width:0}
.side section{margin:0 0 12px}
.side h2{font-size:15px;margin:12px 0 6px;display:inline}
#decide{border:1px solid #d0d7de;border-radius:6px;padding:4px 12px 8px;margin-top:12px;background:#f6f8fa}
#decide>h2{display:block;margin:6px 0}
#decide form{margin:0 0 8px}
#decide form.accept,#decide form.reject{display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px}
#decide form.accept fieldset{flex-basis:100%;order:1;margin:0;font-size:13px;box-sizing:border-box}
#decide label[for]{display:block;font-size:13px;margin:2px 0}
#decide form.accept button,#decide form.reject button{order:-1;flex:none}
#decide form.accept .meta,#decide form.reject .meta{flex:1 1 12em}
#decide p{margin:4px 0;font-size:13px}
#decide button{padding:5px 14px;border-radius:6px;border:1px solid #d0d7de;background:#fff;cursor:pointer;font-weight:600}
#decide .accept button{background:#1f883d;color:#fff;border-color:#1a7f37}
#decide .reject button{color:#cf222e}
#decide details.more{border-top:1px solid #d0d7de;padding-top:6px;font-size:13px}
#decide details.more>summary{cursor:pointer;color:#57606a}
#decide details.more form{margin-top:8px}
#decide .meta{font-size:13px}
#pending{margin:4px 0;padding-left:18px;font-size:13px;overflow-wrap:anywhere} #pending button{margin-left:6px;font-size:12px;font-weight:400;padding:0 6px}
details.summary{border:1px solid #d0d7de;border-radius:6px;padding:0 12px;margin:12px 0 0}
details.summary>summary{cursor:pointer;padding:6px 0}
details.summary>summary h2,details.summary>summary h3{display:inline;margin:0;font-size:15px}
details.summary.facts>summary h3{font-size:14px}
details.summary .md{overflow-wrap:anywhere;font-size:13.5px}
details.summary .md h1,details.summary .md h2,details.summary .md h3,details.summary .md h4{font-size:14px;margin:10px 0 4px}
details.summary .md p,details.summary .md ul{margin:4px 0 8px} details.summary .md ul{padding-left:20px}
details.summary .md pre{max-height:240px}
.section-head{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 14px;margin:12px 0 6px}
.section-head h2{margin:0}
.file{border:1px solid #d0d7de;border-radius:6px;margin:8px 0;overflow:hidden}
.file>summary{padding:6px 12px;background:#f6f8fa;cursor:pointer;font:12px ui-monospace,monospace;overflow-wrap:anywhere}
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
tr.cbox button{margin:4px 6px 0 0}
tr.cnote td{border-left:3px solid #0969da}
.step{border-left:3px solid #d0d7de;padding:2px 12px;margin:6px 0}
.step>summary{cursor:pointer}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap;word-break:break-word;font-size:12px}
@media (min-width:1000px){
 .review{display:grid;grid-template-columns:minmax(0,1fr) clamp(300px,28vw,420px);gap:0 20px;align-items:start}
 .side{grid-column:2;grid-row:1;position:sticky;top:0;max-height:100vh;overflow-y:auto;padding-bottom:12px}
 .work{grid-column:1;grid-row:1}
}
@media (max-width:700px){
 header,main,footer{padding:0 10px}
 header h1{white-space:normal;font-size:17px}
 table.diff.split{min-width:560px}
 table.diff td.no,table.diff col.no{width:2.8em}
 .wide-only{display:none}
 #sessions thead{display:none}
 #sessions tr{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 10px;padding:6px 0;border-bottom:1px solid #eaeef2}
 #sessions td{border:0;padding:0}
 #sessions td.task{flex-basis:100%;max-width:none;white-space:normal;color:#57606a}
}
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

  if (window.matchMedia && window.matchMedia("(min-width: 1000px)").matches) {
    // wide screen: the summary sits beside the diff, so it is open however long it is
    document.querySelectorAll("details[data-open-wide]").forEach(function (d) { d.open = true; });
  }

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
