// Charts from data attributes, so pages carry no inline script: a <canvas data-chart="line"
// data-labels='[...]' data-series='[{"label": "...", "data": [...]}]'> becomes a Chart.js chart,
// on page load and whenever htmx swaps new content in.
(function () {
  function draw(root) {
    if (typeof Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      canvas.dataset.drawn = "1";
      var series = JSON.parse(canvas.dataset.series || "[]");
      new Chart(canvas, {
        type: canvas.dataset.chart,
        data: {
          labels: JSON.parse(canvas.dataset.labels || "[]"),
          datasets: series.map(function (s) {
            return { label: s.label, data: s.data, fill: false, tension: 0.2, borderWidth: 2,
                     stack: canvas.dataset.stacked ? "all" : undefined };
          }),
        },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          scales: canvas.dataset.stacked ? { x: { stacked: true }, y: { stacked: true } } : {},
        },
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
})();
