// The naming studio: a gallery of significant maps, selection, and the annotator's concepts.
// Needs app.js (api, el). Text from users only ever reaches the page through textContent.
"use strict";

(function () {
  const API = "/studio/api";
  const $ = (id) => document.getElementById(id);

  const state = {
    layer: "", cls: "", image: null, imageKey: "", unassigned: false, page: 1, pages: 1,
    items: [],                 // the gallery page
    selected: new Set(),       // item ids selected in the gallery (kept across pages)
    anchor: null,              // index of the last clicked card, for shift-click ranges
    concepts: [],              // my concepts (ConceptView)
    open: new Set(),           // concept ids whose members are shown
    picked: [],                // concept ids ticked for merging, in ticking order
    memberSel: new Map(),      // concept id -> Set of member ids selected for split / drop
  };

  // ------------------------------------------------------------------------------ small helpers

  function status(text, isError) {
    const node = $("status");
    node.textContent = text || "";
    node.className = "status" + (isError ? " error" : text ? " ok" : "");
  }

  function fail(err) {
    status(err && err.detail ? err.detail : String(err), true);
  }

  function pct(value) { return value.toFixed(1) + "%"; }

  function thumb(item, small) {
    return el("span", {class: "thumb" + (small ? " small" : "")},
      el("img", {class: "base", src: `/media/${item.image_media_id}.png`, alt: "", loading: "lazy", draggable: "false"}),
      el("img", {class: "map", src: `/media/${item.map_media_id}.png`, alt: "", loading: "lazy", draggable: "false"}));
  }

  // clusters are numbered from 1, heaviest first, as in the reports (netreveal.formatting.cluster_number)
  function describe(item) {
    return `${item.image_key} · ${item.predicted_class} · ${item.layer} cluster ${item.cluster + 1} · weight ${pct(item.weight)}`;
  }

  // a layer name that may wrap after its dots (never inside a word), as text nodes and <wbr>s
  function breakable(name) {
    const parts = String(name).split(".");
    return parts.flatMap((part, i) => (i < parts.length - 1 ? [part + ".", el("wbr")] : [part]));
  }

  function isTakenConflict(err) {
    return err && err.status === 409 && /move them/.test(err.detail || "");
  }

  // Run a change; on a "maps are in another concept" conflict ask before moving them.
  async function change(send, done) {
    try {
      let result;
      try {
        result = await send(false);
      } catch (err) {
        if (!isTakenConflict(err) || !window.confirm(err.detail + "\n\nMove them to this concept?")) throw err;
        result = await send(true);
      }
      await done(result);
    } catch (err) {
      fail(err);
    }
  }

  // ------------------------------------------------------------------------------------ filters

  function readUrl() {
    const q = new URLSearchParams(window.location.search);
    state.layer = q.get("layer") || "";
    state.cls = q.get("class") || "";
    const image = parseInt(q.get("image") || "", 10);
    state.image = Number.isFinite(image) ? image : null;
    state.unassigned = q.get("unassigned") === "1";
    const page = parseInt(q.get("page") || "1", 10);
    state.page = Number.isFinite(page) && page > 0 ? page : 1;
  }

  function writeUrl() {
    const q = new URLSearchParams();
    if (state.layer) q.set("layer", state.layer);
    if (state.cls) q.set("class", state.cls);
    if (state.image !== null) q.set("image", String(state.image));
    if (state.unassigned) q.set("unassigned", "1");
    if (state.page > 1) q.set("page", String(state.page));
    const search = q.toString();
    window.history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
  }

  async function loadFilters() {
    const data = await api("GET", `${API}/filters`);
    const layer = $("f-layer"), cls = $("f-class");
    for (const l of data.layers) layer.append(el("option", {value: l.name}, `${l.name} (${l.items})`));
    for (const c of data.classes) cls.append(el("option", {value: c.name}, `${c.name} (${c.items})`));
    layer.value = state.layer;
    cls.value = state.cls;
    $("f-unassigned").checked = state.unassigned;
  }

  function onFilter() {
    state.layer = $("f-layer").value;
    state.cls = $("f-class").value;
    state.unassigned = $("f-unassigned").checked;
    state.page = 1;
    loadGallery();
  }

  function setImage(id, key) {
    state.image = id;
    state.imageKey = key || "";
    state.page = 1;
    loadGallery();
  }

  // ------------------------------------------------------------------------------------ gallery

  async function loadGallery() {
    writeUrl();
    const q = new URLSearchParams({page: String(state.page)});
    if (state.layer) q.set("layer", state.layer);
    if (state.cls) q.set("class", state.cls);
    if (state.image !== null) q.set("image", String(state.image));
    if (state.unassigned) q.set("unassigned", "true");
    $("gallery").setAttribute("aria-busy", "true");
    try {
      const data = await api("GET", `${API}/gallery?${q}`);
      if (data.page > data.pages && data.pages >= 1 && state.page > 1) {  // the last page emptied
        state.page = data.pages;
        return loadGallery();
      }
      state.items = data.items;
      state.pages = data.pages;
      state.anchor = null;
      renderGallery(data);
    } catch (err) {
      fail(err);
    } finally {
      $("gallery").setAttribute("aria-busy", "false");
    }
    renderImageFilter();
  }

  function renderGallery(data) {
    const box = $("gallery");
    box.replaceChildren();
    if (!state.items.length) box.append(el("p", {class: "muted"}, "No maps match these filters."));
    state.items.forEach((item, index) => box.append(card(item, index)));
    $("page-info").textContent = `page ${data.page} of ${data.pages} · ${data.total} maps`;
    $("prev").disabled = data.page <= 1;
    $("next").disabled = data.page >= data.pages;
    renderSelection();
  }

  function card(item, index) {
    if (state.image !== null && item.image_id === state.image) state.imageKey = item.image_key;
    const selected = state.selected.has(item.id);
    const pick = el("button", {
      type: "button", class: "pick", "aria-pressed": selected ? "true" : "false",
      "aria-label": "select map " + describe(item), title: describe(item), "data-id": item.id,
    }, thumb(item), el("span", {class: "weight"}, pct(item.weight)));
    pick.addEventListener("click", (ev) => onPick(ev, index));
    const tag = item.concept_name
      ? el("span", {class: "tag", title: "in your concept " + item.concept_name}, item.concept_name)
      : el("span", {class: "tag free"}, "no concept");
    const imageLink = el("button", {type: "button", class: "link image-link", title: "all maps of this image"},
      item.image_key);
    imageLink.addEventListener("click", () => setImage(item.image_id, item.image_key));
    return el("div", {class: "map-card" + (selected ? " selected" : ""), "data-id": item.id},
      pick,
      el("div", {class: "cap"}, el("span", {class: "meta", title: `${item.predicted_class} · ${item.layer}`},
        `${item.predicted_class} · `, ...breakable(item.layer)), imageLink),
      el("div", {class: "cap"}, tag));
  }

  function onPick(ev, index) {
    const item = state.items[index];
    if (ev.shiftKey && state.anchor !== null && state.anchor !== index) {
      const [from, to] = state.anchor < index ? [state.anchor, index] : [index, state.anchor];
      for (let i = from; i <= to; i++) state.selected.add(state.items[i].id);
    } else if (state.selected.has(item.id)) {
      state.selected.delete(item.id);
    } else {
      state.selected.add(item.id);
    }
    state.anchor = index;
    renderSelection();
  }

  function renderSelection() {
    for (const node of $("gallery").querySelectorAll(".map-card")) {
      const on = state.selected.has(Number(node.dataset.id));
      node.classList.toggle("selected", on);
      node.querySelector(".pick").setAttribute("aria-pressed", on ? "true" : "false");
    }
    const n = state.selected.size;
    $("sel-count").textContent = `${n} selected`;
    $("btn-group").disabled = n === 0;
    $("btn-add").disabled = n === 0 || !$("add-target").value;
    $("btn-clear").disabled = n === 0;
    $("selbar").classList.toggle("active", n > 0);
  }

  function renderImageFilter() {
    const chip = $("f-image");
    chip.hidden = state.image === null;
    $("f-image-key").textContent = state.imageKey || (state.image !== null ? "#" + state.image : "");
    const box = $("explanation");
    if (state.image === null) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    api("GET", `${API}/images/${state.image}/explanation`).then(renderExplanation, (err) => {
      box.hidden = true;
      fail(err);
    });
  }

  function renderExplanation(exp) {
    const box = $("explanation");
    state.imageKey = exp.image_key;
    $("f-image-key").textContent = exp.image_key;
    const list = el("ul", {class: "explain-list"});
    for (const c of exp.concepts) {
      list.append(el("li", null,
        el("span", {class: "cname"}, c.name),
        el("meter", {min: "0", max: "1", value: String(c.share)}),
        el("span", {class: "muted"}, ` ${pct(100 * c.share)} of the evidence (${c.items} map${c.items === 1 ? "" : "s"})`)));
    }
    if (exp.total_weight > 0) {
      list.append(el("li", {class: "muted"}, el("span", {class: "cname"}, "not named yet"),
        el("meter", {min: "0", max: "1", value: String(exp.unnamed_share)}), ` ${pct(100 * exp.unnamed_share)}`));
    }
    const truth = exp.true_class ? ` (true class: ${exp.true_class})` : "";
    box.replaceChildren(
      el("div", {class: "explain-head"},
        el("span", {class: "thumb"}, el("img", {class: "base solo", src: `/media/${exp.image_media_id}.png`, alt: "image " + exp.image_key})),
        el("div", null,
          el("h2", null, `Image ${exp.image_key}`),
          el("p", null, `predicted ${exp.predicted_class} at ${pct(100 * exp.probability)}${truth}`),
          exp.concepts.length ? el("p", {class: "muted"}, "Explained by your concepts:")
            : el("p", {class: "muted"}, "None of this image's maps is in one of your concepts yet."))),
      list);
    box.hidden = false;
  }

  // ----------------------------------------------------------------------------------- concepts

  async function loadConcepts() {
    try {
      state.concepts = await api("GET", `${API}/concepts`);
    } catch (err) {
      fail(err);
      return;
    }
    const ids = new Set(state.concepts.map((c) => c.id));
    state.picked = state.picked.filter((id) => ids.has(id));
    for (const id of [...state.open]) if (!ids.has(id)) state.open.delete(id);
    for (const [id, sel] of state.memberSel) {
      const concept = state.concepts.find((c) => c.id === id);
      if (!concept) { state.memberSel.delete(id); continue; }
      const members = new Set(concept.members.map((m) => m.id));
      for (const m of [...sel]) if (!members.has(m)) sel.delete(m);
    }
    renderConcepts();
  }

  function renderConcepts() {
    const list = $("concepts");
    list.replaceChildren(...state.concepts.map(conceptEntry));
    $("no-concepts").hidden = state.concepts.length > 0;
    $("concept-count").textContent = state.concepts.length ? `(${state.concepts.length})` : "";
    const target = $("add-target");
    const keep = target.value;
    target.replaceChildren(el("option", {value: ""}, "add to concept…"),
      ...state.concepts.map((c) => el("option", {value: String(c.id)}, c.name)));
    target.value = state.concepts.some((c) => String(c.id) === keep) ? keep : "";
    renderMergeBar();
    renderSelection();
  }

  function renderMergeBar() {
    const n = state.picked.length;
    const button = $("btn-merge");
    button.disabled = n < 2;
    button.textContent = n >= 2 ? `Merge ${n} ticked` : "Merge ticked";
    const first = state.concepts.find((c) => c.id === state.picked[0]);
    $("merge-name").placeholder = first ? `name after merging (default: ${first.name})` : "name after merging (optional)";
  }

  function conceptEntry(concept) {
    const images = new Set(concept.members.map((m) => m.image_id)).size;
    const open = state.open.has(concept.id);
    const tick = el("input", {type: "checkbox", class: "merge-pick", "aria-label": "tick " + concept.name + " for merging"});
    tick.checked = state.picked.includes(concept.id);
    tick.addEventListener("change", () => {
      state.picked = state.picked.filter((id) => id !== concept.id);
      if (tick.checked) state.picked.push(concept.id);
      renderMergeBar();
    });
    const name = el("button", {type: "button", class: "concept-name link", title: "click to rename"}, concept.name);
    name.addEventListener("click", () => startRename(entry, concept));
    const toggle = el("button", {type: "button", class: "secondary small toggle", "aria-expanded": open ? "true" : "false"},
      open ? "Hide maps" : "Show maps");
    toggle.addEventListener("click", () => {
      if (state.open.has(concept.id)) state.open.delete(concept.id); else state.open.add(concept.id);
      renderConcepts();
    });
    const remove = el("button", {type: "button", class: "secondary small danger remove"}, "Remove");
    remove.addEventListener("click", () => removeConcept(concept));
    const entry = el("li", {class: "concept" + (open ? " open" : ""), "data-id": concept.id},
      el("div", {class: "concept-row"}, tick, name,
        el("span", {class: "concept-meta muted"}, `${concept.size} map${concept.size === 1 ? "" : "s"} · ${images} image${images === 1 ? "" : "s"}`)),
      el("div", {class: "concept-preview"}, ...concept.members.slice(0, 6).map((m) => thumb(m, true))),
      el("div", {class: "row concept-actions"}, toggle, remove));
    if (open) entry.append(conceptBody(concept));
    return entry;
  }

  function conceptBody(concept) {
    const sel = state.memberSel.get(concept.id) || new Set();
    state.memberSel.set(concept.id, sel);
    const grid = el("div", {class: "members"});
    const splitName = el("input", {type: "text", class: "split-name", maxlength: "80", placeholder: "name of the new concept",
      "aria-label": "name of the concept split out of " + concept.name, autocomplete: "off"});
    const split = el("button", {type: "button", class: "small split"}, "Split selected out");
    const drop = el("button", {type: "button", class: "secondary small drop"}, "Drop selected");
    const count = el("span", {class: "muted member-count"});
    const refresh = () => {
      count.textContent = `${sel.size} selected`;
      split.disabled = drop.disabled = sel.size === 0;
      for (const node of grid.querySelectorAll(".pick")) {
        const on = sel.has(Number(node.dataset.id));
        node.setAttribute("aria-pressed", on ? "true" : "false");
        node.parentElement.classList.toggle("selected", on);
      }
    };
    let anchor = null;
    concept.members.forEach((m, index) => {
      const pick = el("button", {type: "button", class: "pick", "aria-pressed": "false", "data-id": m.id,
        "aria-label": "select member " + describe(m), title: describe(m)}, thumb(m, true));
      pick.addEventListener("click", (ev) => {
        if (ev.shiftKey && anchor !== null && anchor !== index) {
          const [from, to] = anchor < index ? [anchor, index] : [index, anchor];
          for (let i = from; i <= to; i++) sel.add(concept.members[i].id);
        } else if (sel.has(m.id)) sel.delete(m.id); else sel.add(m.id);
        anchor = index;
        refresh();
      });
      grid.append(el("div", {class: "member"}, pick));
    });
    split.addEventListener("click", () => change(
      () => api("POST", `${API}/concepts/${concept.id}/split`, {items: [...sel], name: splitName.value}),
      async (made) => {
        state.memberSel.delete(concept.id);
        state.open.add(made.id);
        status(`Split ${made.size} map${made.size === 1 ? "" : "s"} out of “${concept.name}” into “${made.name}”.`);
        await refreshAll();
      }));
    drop.addEventListener("click", () => change(
      () => api("POST", `${API}/concepts/${concept.id}/items/drop`, {items: [...sel]}),
      async () => {
        status(`Dropped ${sel.size} map${sel.size === 1 ? "" : "s"} from “${concept.name}”.`);
        state.memberSel.delete(concept.id);
        await refreshAll();
      }));
    const body = el("div", {class: "concept-body"}, grid,
      el("div", {class: "row"}, count, splitName, split, drop));
    refresh();
    return body;
  }

  function startRename(entry, concept) {
    const row = entry.querySelector(".concept-row");
    const label = row.querySelector(".concept-name");
    const input = el("input", {type: "text", class: "rename", maxlength: "80", "aria-label": "new name for " + concept.name,
      autocomplete: "off"});
    input.value = concept.name;
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const name = input.value;
      if (!save || name.trim() === concept.name) {
        renderConcepts();
        return;
      }
      try {
        const view = await api("PATCH", `${API}/concepts/${concept.id}`, {name});
        status(`Renamed “${concept.name}” to “${view.name}”.`);
        await refreshAll();
      } catch (err) {
        fail(err);
        renderConcepts();
      }
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); finish(true); }
      if (ev.key === "Escape") { ev.preventDefault(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
    label.replaceWith(input);
    input.focus();
    input.select();
  }

  async function removeConcept(concept) {
    if (!window.confirm(`Remove the concept “${concept.name}”? Its ${concept.size} maps become free again.`)) return;
    try {
      await api("DELETE", `${API}/concepts/${concept.id}`);
      status(`Removed “${concept.name}”.`);
      await refreshAll();
    } catch (err) {
      fail(err);
    }
  }

  // ------------------------------------------------------------------------------------ actions

  async function refreshAll() {
    await Promise.all([loadConcepts(), loadGallery()]);
  }

  function groupSelected() {
    const items = [...state.selected];
    const name = $("new-name").value;
    change(
      (move) => api("POST", `${API}/concepts`, {name, items, move}),
      async (made) => {
        state.selected.clear();
        $("new-name").value = "";
        status(`Grouped ${made.size} map${made.size === 1 ? "" : "s"} as “${made.name}”.`);
        await refreshAll();
      });
  }

  function addSelected() {
    const id = $("add-target").value;
    if (!id) return;
    const items = [...state.selected];
    change(
      (move) => api("POST", `${API}/concepts/${id}/items`, {items, move}),
      async (view) => {
        state.selected.clear();
        status(`“${view.name}” now holds ${view.size} map${view.size === 1 ? "" : "s"}.`);
        await refreshAll();
      });
  }

  function mergePicked() {
    if (state.picked.length < 2) return;
    const body = {concepts: [...state.picked]};
    const name = $("merge-name").value.trim();
    if (name) body.name = name;
    change(() => api("POST", `${API}/concepts/merge`, body), async (view) => {
      state.picked = [];
      $("merge-name").value = "";
      state.open.delete(view.id);
      status(`Merged into “${view.name}” (${view.size} maps).`);
      await refreshAll();
    });
  }

  function bind() {
    $("f-layer").addEventListener("change", onFilter);
    $("f-class").addEventListener("change", onFilter);
    $("f-unassigned").addEventListener("change", onFilter);
    $("f-image-clear").addEventListener("click", () => setImage(null, ""));
    $("prev").addEventListener("click", () => { if (state.page > 1) { state.page -= 1; loadGallery(); } });
    $("next").addEventListener("click", () => { if (state.page < state.pages) { state.page += 1; loadGallery(); } });
    $("btn-group").addEventListener("click", groupSelected);
    $("new-name").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && state.selected.size) { ev.preventDefault(); groupSelected(); }
    });
    $("btn-add").addEventListener("click", addSelected);
    $("add-target").addEventListener("change", renderSelection);
    $("btn-clear").addEventListener("click", () => { state.selected.clear(); state.anchor = null; renderSelection(); });
    $("btn-merge").addEventListener("click", mergePicked);
  }

  async function start() {
    readUrl();
    bind();
    renderSelection();
    try {
      await loadFilters();
    } catch (err) {
      fail(err);
    }
    await refreshAll();
    document.getElementById("studio").dataset.ready = "yes";
  }

  start();
})();
