// Drag and drop of output handles onto the builder's inputs, with standard HTML5 events
// (dragstart / dragover / drop with preventDefault), so real browsers and Playwright both work.
//
// During dragover the browser hides dataTransfer's data, so the payload of the drag in progress
// is also kept here (`current`); every drop target is asked whether it accepts it, and those that
// do get the class `drop-ok` for the whole drag.

let current = null;

/** The payload being dragged now, or null. Views skip re-rendering while this is set. */
export function dragging() {
  return current;
}

/**
 * Make `el` a drag handle. `payload()` returns {kind: "group"|"result", address, type?, dtype?},
 * read at drag start so a changed version select is taken into account.
 */
export function makeDraggable(el, payload) {
  el.draggable = true;
  el.classList.add("draggable");
  el.addEventListener("dragstart", (event) => {
    // Result handles sit inside group handles: the innermost handle owns the drag.
    event.stopPropagation();
    current = payload();
    event.dataTransfer.effectAllowed = "copy";
    event.dataTransfer.setData("text/plain", current.address);
    event.dataTransfer.setData("application/x-cryoweave", JSON.stringify(current));
    el.classList.add("drag-source");
    highlightTargets();
  });
  el.addEventListener("dragend", () => {
    el.classList.remove("drag-source");
    endDrag();
  });
}

/**
 * Make `el` accept drops: `accepts(payload)` says whether it fits, `onDrop(payload)` acts.
 * Targets that do not accept a payload let the event bubble to an enclosing target.
 */
export function makeDropTarget(el, accepts, onDrop) {
  el.classList.add("drop-target");
  el._cwAccepts = accepts;
  if (current) el.classList.toggle("drop-ok", Boolean(accepts(current)));
  const fits = () => current && accepts(current);
  el.addEventListener("dragenter", (event) => {
    if (!fits()) return;
    event.preventDefault();
    event.stopPropagation();
    el.classList.add("drop-hover");
  });
  el.addEventListener("dragover", (event) => {
    if (!fits()) return;
    event.preventDefault();
    event.stopPropagation();
    event.dataTransfer.dropEffect = "copy";
    el.classList.add("drop-hover");
  });
  el.addEventListener("dragleave", (event) => {
    if (!el.contains(event.relatedTarget)) el.classList.remove("drop-hover");
  });
  el.addEventListener("drop", (event) => {
    const payload = current || readTransfer(event.dataTransfer);
    if (!payload || !accepts(payload)) return;
    event.preventDefault();
    event.stopPropagation();
    el.classList.remove("drop-hover");
    endDrag();
    onDrop(payload);
  });
}

function readTransfer(transfer) {
  try {
    return JSON.parse(transfer.getData("application/x-cryoweave"));
  } catch {
    return null;
  }
}

function highlightTargets() {
  for (const el of document.querySelectorAll(".drop-target")) {
    el.classList.toggle("drop-ok", Boolean(current && el._cwAccepts && el._cwAccepts(current)));
  }
}

function endDrag() {
  current = null;
  for (const el of document.querySelectorAll(".drop-ok, .drop-hover")) {
    el.classList.remove("drop-ok", "drop-hover");
  }
}
