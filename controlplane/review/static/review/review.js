// The review queue: a verdict is a keystroke, and the right label of a wrong one comes from a small combobox over the
// 1000 ImageNet labels (the ARIA "list autocomplete" pattern). Keys act only when no field has the focus, no modifier
// is held and no verdict is on its way; the verdict keys only where the buttons exist (staff).
(() => {
  const MAX_SHOWN = 8;
  const byId = (id) => document.getElementById(id);
  const typing = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  let labels = null;
  let busy = false;
  let busyPanel = false; // the panel is being replaced by our request: move the focus when it is
  let active = -1;
  let lastVerdict = "";

  const allLabels = () => {
    if (labels === null) {
      const data = byId("imagenet-labels");
      labels = data ? JSON.parse(data.textContent) : [];
    }
    return labels;
  };

  // Labels that start with the text first, then those with a word that starts with it, then any that hold it.
  const matches = (text) => {
    const q = text.trim().toLowerCase();
    if (!q) return [];
    const starts = [];
    const words = [];
    const within = [];
    for (const label of allLabels()) {
      const l = label.toLowerCase();
      const i = l.indexOf(q);
      if (i === 0) starts.push(label);
      else if (i > 0 && /[\s'-]/.test(l[i - 1])) words.push(label);
      else if (i > 0) within.push(label);
    }
    // Shortest first within each group: "espr" offers "espresso" before "espresso maker".
    const short = (a, b) => a.length - b.length || a.localeCompare(b);
    return [...starts.sort(short), ...words.sort(short), ...within.sort(short)].slice(0, MAX_SHOWN);
  };

  const highlight = (index) => {
    const field = byId("true-label");
    const options = [...byId("label-options").querySelectorAll("[role=option]")];
    active = options.length ? (index + options.length) % options.length : -1;
    options.forEach((o, i) => o.setAttribute("aria-selected", String(i === active)));
    if (active >= 0) {
      field.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    } else {
      field.removeAttribute("aria-activedescendant");
    }
  };

  const show = (found) => {
    const field = byId("true-label");
    const list = byId("label-options");
    if (!field || !list) return;
    list.replaceChildren(
      ...found.map((label, i) => {
        const option = document.createElement("li");
        option.id = `label-option-${i}`;
        option.setAttribute("role", "option");
        option.setAttribute("aria-selected", "false");
        option.textContent = label;
        // mousedown, not click: the field keeps the focus, so its blur does not close the list first.
        option.addEventListener("mousedown", (event) => {
          event.preventDefault();
          choose(label);
        });
        return option;
      }),
    );
    list.hidden = found.length === 0;
    field.setAttribute("aria-expanded", String(found.length > 0));
    active = -1;
    field.removeAttribute("aria-activedescendant");
  };

  const choose = (label) => {
    byId("true-label").value = label;
    show([]);
  };

  document.addEventListener("input", (event) => {
    if (event.target.id === "true-label") show(matches(event.target.value));
  });
  document.addEventListener("focusout", (event) => {
    if (event.target.id === "true-label") show([]);
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.id !== "true-label") return;
    const list = byId("label-options");
    const open = !list.hidden;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!open) show(matches(event.target.value));
      if (event.key === "ArrowDown") highlight(active + 1);
      else highlight(active < 0 ? -1 : active - 1);
    } else if (event.key === "Enter" && open && active >= 0) {
      event.preventDefault(); // takes the label; the next Enter records the verdict
      choose(list.querySelectorAll("[role=option]")[active].textContent);
    } else if (event.key === "Enter") {
      lastVerdict = "wrong";
    } else if (event.key === "Escape") {
      event.preventDefault();
      if (open) show([]);
      else event.target.blur();
    }
  });

  const click = (id) => {
    const button = byId(id);
    if (!button) return false;
    lastVerdict = id;
    button.click();
    return true;
  };
  const follow = (id) => {
    const link = byId(id);
    if (!link) return false;
    link.click();
    return true;
  };
  const wrong = () => {
    const field = byId("true-label");
    if (!field) return false;
    field.focus();
    field.select();
    return true;
  };
  const keys = {
    c: () => click("verdict-correct"),
    u: () => click("verdict-unclear"),
    w: wrong,
    j: () => follow("review-next"),
    n: () => follow("review-next"),
    k: () => follow("review-prev"),
    p: () => follow("review-prev"),
  };

  document.addEventListener("keydown", (event) => {
    if (!byId("review") || event.defaultPrevented || event.repeat) return;
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const dialog = byId("shortcuts");
    if (dialog && dialog.open) return;
    const act = keys[event.key];
    if (!act) return;
    event.preventDefault(); // also while busy: a key pressed during a verdict must not fall through to the page
    if (!busy) act();
  });

  // One verdict or move at a time; after each, the next candidate has the focus (or the label field again when the
  // label was refused), and a screen reader hears what was recorded.
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.target && event.detail.target.id === "review") busy = busyPanel = true;
  });
  document.addEventListener("htmx:afterRequest", () => {
    busy = false;
  });
  // A verdict or move that failed (the server's error, a lost connection, a session that ended) says so, visibly and
  // to a screen reader; the candidate stays, so the same key tries again.
  const failed = (event, why) => {
    if (!event.detail.target || event.detail.target.id !== "review") return;
    busyPanel = false;
    const text = `Not done: ${why}. Try again, or reload the page.`;
    let box = byId("review-failed");
    if (!box) {
      box = document.createElement("div");
      box.id = "review-failed";
      box.className = "error";
      byId("review").before(box);
    }
    box.textContent = text;
    const live = byId("review-live");
    if (live) live.textContent = text;
  };
  // An answer that is not the queue's panel (the login page, after the session ended) is never swapped into it.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (!event.detail.target || event.detail.target.id !== "review" || !event.detail.shouldSwap) return;
    if (!event.detail.serverResponse.trimStart().startsWith('<div id="review"')) {
      event.detail.shouldSwap = false;
      failed(event, "the answer was not the queue (has the session ended? log in again)");
    }
  });
  document.addEventListener("htmx:responseError", (event) => failed(event, `the server answered ${event.detail.xhr.status}`));
  document.addEventListener("htmx:sendError", (event) => failed(event, "the server could not be reached"));

  // After the settle: the panel swapped in (outerHTML) is the one in the document now, not the event's old target.
  document.addEventListener("htmx:afterSettle", () => {
    const panel = byId("review");
    if (!panel || !busyPanel) return;
    busyPanel = false;
    const stale = byId("review-failed");
    if (stale) stale.remove();
    const live = byId("review-live");
    if (live) live.textContent = panel.dataset.notice || "";
    const field = byId("true-label");
    if (panel.dataset.refused && lastVerdict === "wrong" && field) field.focus();
    else (byId("review-current-title") || byId("review-count")).focus();
    lastVerdict = "";
  });
})();
