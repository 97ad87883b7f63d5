// Keyboard shortcuts for the review queue (no inline scripts: the page's CSP allows only this file).
// j / k: next / previous draft; e: edit its reply; a: approve; r: reject (focus the reason);
// Ctrl+Enter in a reply: approve; Escape: leave the field.
(function () {
  "use strict";
  function cards() { return Array.prototype.slice.call(document.querySelectorAll("article.draft")); }
  function current() { return document.querySelector("article.draft.current") || cards()[0] || null; }
  function select(card) {
    cards().forEach(function (c) { c.classList.remove("current"); });
    if (card) { card.classList.add("current"); card.focus({ preventScroll: true }); card.scrollIntoView({ block: "nearest" }); }
  }
  function move(step) {
    var all = cards(); if (!all.length) { return; }
    var i = all.indexOf(current());
    select(all[Math.max(0, Math.min(all.length - 1, i + step))]);
  }
  function submit(form) {
    if (!form) { return; }
    if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
  }
  document.addEventListener("keydown", function (ev) {
    var t = ev.target, typing = t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (ev.key === "Escape") { t.blur(); }
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && t.tagName === "TEXTAREA") {
        ev.preventDefault(); submit(t.form);
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var card = current();
    if (ev.key === "j") { move(1); }
    else if (ev.key === "k") { move(-1); }
    else if (ev.key === "e" && card) { ev.preventDefault(); var ta = card.querySelector("textarea"); if (ta) { ta.focus(); } }
    else if (ev.key === "a" && card) { submit(card.querySelector("form.approve")); }
    else if (ev.key === "r" && card) { ev.preventDefault(); var r = card.querySelector("form.reject input[name=reason]"); if (r) { r.focus(); } }
  });
  document.addEventListener("DOMContentLoaded", function () { select(current()); });
})();
