// The console's only script: copy buttons for secrets shown once. The
// buttons stay hidden without it; the secret is still selectable text.
"use strict";
for (const button of document.querySelectorAll("button[data-copy]")) {
  const field = document.getElementById(button.dataset.copy);
  const status = document.querySelector('[data-copied="' + button.dataset.copy + '"]');
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = "Copied.";
    } catch {
      field.select();
      status.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
    }
  });
}
