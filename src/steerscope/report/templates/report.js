// steerscope report: sortable tables and expand/collapse. No dependencies, no network.
(function () {
  function cellValue(row, col) {
    var cell = row.children[col];
    if (!cell) return null;
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (raw === "") return null;
    var num = Number(raw);
    return isNaN(num) ? raw.toLowerCase() : num;
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    var asc = !th.classList.contains("sort-asc");
    table.querySelectorAll("th").forEach(function (h) { h.classList.remove("sort-asc", "sort-desc"); });
    th.classList.add(asc ? "sort-asc" : "sort-desc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, col), y = cellValue(b, col);
      if (x === null && y === null) return 0;
      if (x === null) return 1;   // empty cells last either way
      if (y === null) return -1;
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function () { sortBy(table, col, th); });
    });
  });
  function setAll(open) { document.querySelectorAll("details").forEach(function (d) { d.open = open; }); }
  var expand = document.getElementById("expand-all"), collapse = document.getElementById("collapse-all");
  if (expand) expand.addEventListener("click", function () { setAll(true); });
  if (collapse) collapse.addEventListener("click", function () { setAll(false); });
  function openTarget() {   // following a link to a vector opens its section
    var el = location.hash && document.getElementById(location.hash.slice(1));
    if (el && el.tagName === "DETAILS") el.open = true;
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
