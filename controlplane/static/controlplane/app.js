// Drag and drop onto the upload form: the dropped files become the form's file input, then the form posts as usual.
document.addEventListener("DOMContentLoaded", () => {
  const zone = document.querySelector("[data-dropzone]");
  if (!zone) return;
  const input = zone.querySelector("input[type=file]");
  const chosen = zone.querySelector("[data-chosen]");
  const show = () => {
    chosen.textContent = Array.from(input.files).map((f) => f.name).join(", ");
  };
  input.addEventListener("change", show);
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      show();
    }
  });
});

// The theme switch: the OS's preference until the operator picks one; the pick is remembered (the page's <head> applies it
// before the first paint).
(() => {
  const root = document.documentElement;
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const isDark = () => root.dataset.theme === "dark" || (root.dataset.theme !== "light" && dark.matches);
  const show = () => document.querySelectorAll(".theme-toggle").forEach((b) => b.setAttribute("aria-pressed", String(isDark())));
  document.addEventListener("DOMContentLoaded", () => {
    show();
    document.querySelectorAll(".theme-toggle").forEach((button) =>
      button.addEventListener("click", () => {
        root.dataset.theme = isDark() ? "light" : "dark";
        try {
          localStorage.setItem("sightline-theme", root.dataset.theme);
        } catch (e) {
          // private mode: the choice lasts for this page only
        }
        show();
      }),
    );
  });
  dark.addEventListener("change", show);
})();

// The menu folds behind a button on narrow screens (CSS decides when the button shows).
const menuOpen = (open) => {
  const header = document.querySelector("header.top");
  const toggle = header && header.querySelector(".menu-toggle");
  if (!toggle) return;
  header.classList.toggle("open", open);
  toggle.setAttribute("aria-expanded", String(open));
};
document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.querySelector(".menu-toggle");
  if (toggle) toggle.addEventListener("click", () => menuOpen(toggle.getAttribute("aria-expanded") !== "true"));
});

// Keyboard shortcuts: / finds an object, g d / g f / g i go to the dashboard, failures, infrastructure, ? lists them.
// None fires while typing in a field or with a modifier held.
(() => {
  const pages = { d: "/", f: "/failures/", i: "/infra/" };
  let g = 0;
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  const dialog = () => document.getElementById("shortcuts");
  const showShortcuts = () => {
    const d = dialog();
    if (d && !d.open) d.showModal();
  };
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-shortcuts]").forEach((b) => b.addEventListener("click", showShortcuts));
  });
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (!document.getElementById("find") || (dialog() && dialog().open)) return;
    const key = event.key;
    if (g && Date.now() - g < 1500 && pages[key]) {
      event.preventDefault();
      g = 0;
      window.location.assign(pages[key]);
      return;
    }
    g = 0;
    if (key === "/") {
      event.preventDefault();
      if (window.getComputedStyle(document.querySelector(".menu")).display === "none") menuOpen(true);
      const find = document.getElementById("find");
      find.focus();
      find.select();
    } else if (key === "?") {
      event.preventDefault();
      showShortcuts();
    } else if (key === "g") {
      g = Date.now();
    }
  });
})();

// On a phone the chart scrolls in its box: show its newest minutes first.
const chartToNow = () => document.querySelectorAll(".chart .plot").forEach((plot) => {
  plot.scrollLeft = plot.scrollWidth;
});
document.addEventListener("DOMContentLoaded", chartToNow);
document.addEventListener("htmx:afterSwap", chartToNow);

// Live parts refresh every few seconds without taking focus. A screen reader hears, politely, only what changed that
// matters (the listener's state, a new classification), not every refresh; after the operator's own listener button,
// focus goes to the button that replaced it.
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("live-status");
  let listener = document.querySelector("#listener-state")?.dataset.state;
  let newest = document.querySelector("tr.result")?.dataset.image;
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target.id === "health") {
      const state = target.querySelector("#listener-state")?.dataset.state;
      if (status && state && listener && state !== listener) status.textContent = `Listener ${state}.`;
      listener = state;
      if (event.detail.requestConfig?.elt?.closest?.("#listener")) {
        target.querySelector("#listener-stop, #listener-start")?.focus();
      }
    } else if (target.id === "recent") {
      const first = target.querySelector("tr.result");
      const name = first?.dataset.image;
      if (status && name && newest !== undefined && name !== newest) {
        const label = first.querySelector(".label-name")?.textContent || "";
        status.textContent = `New classification: ${name}${label ? `, ${label}` : ""}.`;
      }
      newest = name;
    }
  });
});
