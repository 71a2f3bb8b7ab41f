// Progressive enhancement for the instructor pages; every action also works without it.
(function () {
  "use strict";
  // Confirm destructive or bulk actions (forms and buttons marked data-confirm).
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  // "Select all" for the graded rows of the submissions table.
  var all = document.getElementById("select-all");
  var boxes = document.querySelectorAll('#submissions input[name="selected"]');
  var needs = document.querySelectorAll("[data-needs-selection]");
  function refresh() {
    var checked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    needs.forEach(function (button) { button.disabled = checked === 0; });
    if (all) { all.checked = checked > 0 && checked === boxes.length; all.indeterminate = checked > 0 && checked < boxes.length; }
  }
  if (all && boxes.length) {
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      refresh();
    });
  }
  boxes.forEach(function (b) { b.addEventListener("change", refresh); });
  refresh();

  // The rubric total on the settings form follows what is typed.
  var form = document.getElementById("activity-form");
  if (form) {
    form.addEventListener("input", function () {
      var sum = 0;
      form.querySelectorAll("input.points").forEach(function (input) {
        var value = parseFloat(input.value.replace(",", "."));
        if (isFinite(value) && value > 0) { sum += value; }
      });
      sum = Math.round(sum * 100) / 100;
      document.getElementById("rubric-total").textContent = sum;
      document.getElementById("max_score").placeholder = sum;
    });
  }
})();
