// Classic (blocking) script so the remembered theme applies before first paint.
(function () {
  try {
    var theme = localStorage.getItem("clawdbot.theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage unavailable */ }
})();
