/* Lift landing-page beacon. Install on the landing page with:
 *   <script async src="https://COLLECTOR/lift.js"></script>
 * It acts only for visitors who arrived through a Lift tracking link (the redirect adds
 * lift_vid and lift_link to the URL) and reports, with navigator.sendBeacon, the session's
 * time on page and page views; call lift.goal("name") on a goal (a signup, add-to-cart).
 * It sets no cookies; it keeps the session in sessionStorage (this tab, this site). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !navigator.sendBeacon || !window.sessionStorage || !window.URLSearchParams) return;
  var endpoint = new URL("b", script.src).href;
  var KEY = "lift_session";
  var ENGAGED_MS = __ENGAGED_MS__;
  var params = new URLSearchParams(window.location.search);
  var vid = params.get("lift_vid");
  var link = params.get("lift_link");
  var st = null;
  try { st = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { st = null; }
  if (vid && link && (!st || st.v !== vid || st.l !== link)) {
    st = { s: randomId(), v: vid, l: link, p: 0 };
  }
  if (!st || !st.s || !st.v || !st.l) return;
  st.p = (st.p || 0) + 1;
  try { sessionStorage.setItem(KEY, JSON.stringify(st)); } catch (e) { /* private mode: one page */ }
  var start = Date.now();

  function randomId() {
    var a = new Uint8Array(16);
    window.crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  function send(goal) {
    var body = JSON.stringify({ s: st.s, v: st.v, l: st.l, d: Date.now() - start, p: st.p, g: goal || null });
    try { navigator.sendBeacon(endpoint, body); } catch (e) { /* nothing to do */ }
  }

  send(null);
  window.setTimeout(function () { send(null); }, ENGAGED_MS);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") send(null);
  });
  window.addEventListener("pagehide", function () { send(null); });
  window.lift = window.lift || {};
  window.lift.goal = function (name) { send(String(name || "goal")); };
})();
