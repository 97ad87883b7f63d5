// The desk's own script (no inline scripts: the page's CSP allows only this file and htmx).
// 1. Times: <time class="when" datetime=ISO> in the reader's timezone with "12 min ago";
//    <time class="since" datetime=ISO> as a running wait ("12 min"). The server's text is the fallback.
// 2. Keys for the review queue: j / k next / previous draft; e edit its reply (which claims it); a approve;
//    r the reason to reject (Enter there rejects); Ctrl+Enter in a reply approves; Escape leaves the field.
(function () {
  "use strict";
  var absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  var UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function ago(seconds) {
    for (var i = 0; i < UNITS.length; i++) {
      if (Math.abs(seconds) >= UNITS[i][1] || UNITS[i][0] === "second") {
        return relative ? relative.format(-Math.round(seconds / UNITS[i][1]), UNITS[i][0]) : "";
      }
    }
    return "";
  }
  function wait(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min"; }
    if (s < 86400) { var m = Math.floor(s % 3600 / 60); return Math.floor(s / 3600) + " h " + (m < 10 ? "0" : "") + m + " min"; }
    return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
  }
  function showTimes(root) {
    var now = Date.now();
    Array.prototype.forEach.call((root || document).querySelectorAll("time[datetime]"), function (t) {
      var when = new Date(t.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      var seconds = (now - when.getTime()) / 1000;
      if (t.classList.contains("since")) { t.textContent = wait(seconds); }
      else if (t.classList.contains("when")) { t.textContent = absolute.format(when) + (relative ? " (" + ago(seconds) + ")" : ""); }
    });
  }

  function cards() { return Array.prototype.slice.call(document.querySelectorAll("article.draft")); }
  function current() { return document.querySelector("article.draft.current") || cards()[0] || null; }
  function select(card, focus) {
    cards().forEach(function (c) { c.classList.remove("current"); });
    if (card) {
      card.classList.add("current");
      if (focus) { card.focus({ preventScroll: true }); }
      card.scrollIntoView({ block: "nearest" });
    }
  }
  function move(step) {
    var all = cards(); if (!all.length) { return; }
    var i = all.indexOf(current());
    select(all[Math.max(0, Math.min(all.length - 1, i + step))], true);
  }
  function press(button) { if (button) { button.click(); } }  // a click: htmx and plain forms both see which button

  document.addEventListener("keydown", function (ev) {
    var t = ev.target, typing = t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (ev.key === "Escape") { t.blur(); var c = t.closest("article.draft"); if (c) { select(c, true); } }
      else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && t.tagName === "TEXTAREA" && t.form) {
        ev.preventDefault(); press(t.form.querySelector("button.approve"));
      } else if (ev.key === "Enter" && t.name === "reason" && t.form) {
        ev.preventDefault(); press(t.form.querySelector("button.reject"));
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || (t && t.tagName === "BUTTON" && (ev.key === "Enter" || ev.key === " "))) { return; }
    var card = t && t.closest ? t.closest("article.draft") : null;
    if (card) { select(card, false); } else { card = current(); }
    if (ev.key === "j") { move(1); }
    else if (ev.key === "k") { move(-1); }
    else if (ev.key === "e" && card) { ev.preventDefault(); var ta = card.querySelector("textarea"); if (ta) { ta.focus(); } }
    else if (ev.key === "a" && card) { press(card.querySelector("button.approve")); }
    else if (ev.key === "r" && card) { ev.preventDefault(); var r = card.querySelector("input[name=reason]"); if (r) { r.focus(); } }
  });
  // a card swapped in by htmx (a decision, a refused one) keeps the keyboard's place
  document.addEventListener("htmx:afterSwap", function (ev) {
    showTimes(document);
    var target = ev.detail && ev.detail.target;
    if (target && target.tagName === "ARTICLE" && !target.isConnected) {
      var id = target.id, swapped = id ? document.getElementById(id) : null;
      if (swapped) { select(swapped, true); }
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    showTimes(document);
    setInterval(function () { showTimes(document); }, 30000);
    if (document.querySelector("article.draft")) { select(current(), !document.activeElement || document.activeElement === document.body); }
  });
})();
