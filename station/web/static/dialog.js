// The confirmation every action asks for: the browser's own modal <dialog>, which keeps the keyboard focus inside
// it and closes on Escape (answered as "no"). The safe answer (Cancel) has the focus when it opens.

import { el } from "./format.js";

/** Ask; resolves true only when the operator presses the confirm button. */
export function confirmAction({ title, text, confirmLabel, danger = false }) {
  const cancel = el("button", { type: "button", id: "confirm-cancel", value: "cancel" }, "Cancel");
  const ok = el("button", { type: "button", id: "confirm-ok", class: danger ? "danger" : "primary" }, confirmLabel);
  const dialog = el("dialog", { id: "confirm-dialog", "aria-labelledby": "confirm-title" },
    el("h2", { id: "confirm-title" }, title),
    el("p", {}, text),
    el("div", { class: "dialog-buttons" }, cancel, ok));
  document.body.append(dialog);
  return new Promise((resolve) => {
    let answer = false;
    ok.addEventListener("click", () => { answer = true; dialog.close(); });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });  // Escape closes too
    dialog.showModal();
    cancel.focus();
  });
}
