// alertbridge console: confirmations for destructive actions and auto-submitting filters. No dependencies.
"use strict";
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) { event.preventDefault(); }
});
document.addEventListener("change", function (event) {
  var field = event.target;
  if (field.tagName === "SELECT" && field.form && field.form.classList.contains("filters")) { field.form.submit(); }
});
