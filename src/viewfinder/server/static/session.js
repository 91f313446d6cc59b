// Signing out: the header's form posts to the API (with the CSRF token); this module
// sends it with fetch() and then shows the sign-in page.

import { api } from "./overlay.js";

const form = document.getElementById("logout-form");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/v1/auth/logout", { method: "POST" });
    } finally {
      window.location.assign("/login");
    }
  });
}
