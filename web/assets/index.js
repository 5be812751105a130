// Fills this server's address into the examples on the home page.
const origin = window.location.origin;
for (const el of document.querySelectorAll('.origin')) el.textContent = origin;
