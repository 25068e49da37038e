// The copy button beside the calendar link: an enhancement only. Without script the button stays
// hidden and the link is plain, selectable text in its field.
for (const button of document.querySelectorAll("button[data-copy]")) {
  const source = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.status);
  button.hidden = false;
  button.addEventListener("click", async () => {
    source.select();
    try {
      await navigator.clipboard.writeText(source.value);
    } catch {
      document.execCommand("copy"); // an older browser, or a page not served over https
    }
    status.textContent = button.dataset.done;
  });
}
