// The evaluation study page: one question at a time, as /study/api/state gives it. The page never
// learns which method made an explanation: pictures are asked for by question id and letter.
"use strict";

const SCALE_TEXT = {
  informativeness: "How informative is this explanation about the network's decision?",
  understandability: "How easy is this explanation to understand?",
};
const SCALE_ENDS = {informativeness: ["not at all", "very"], understandability: ["very hard", "very easy"]};

const form = document.getElementById("question-form");
const body = document.getElementById("question-body");
const prompt = document.getElementById("prompt");
const message = document.getElementById("message");
const nextBtn = document.getElementById("next-btn");
const progressBar = document.getElementById("progress");
const progressText = document.getElementById("progress-text");
let current = null;

function base(id) {
  return `/study/api/questions/${encodeURIComponent(id)}`;
}

function picture(src, alt, caption) {
  return el("figure", {class: "picture"}, el("img", {src, alt}), caption ? el("figcaption", {}, caption) : null);
}

function choices(name, options, labelFor) {
  const box = el("div", {class: "choices", role: "radiogroup"});
  for (const option of options) {
    box.append(el("label", {}, el("input", {type: "radio", name, value: option}), labelFor ? labelFor(option) : option));
  }
  return box;
}

function likert(letter, scale, range) {
  const ends = SCALE_ENDS[scale] || ["low", "high"];
  const group = el("fieldset", {class: "likert", "data-letter": letter, "data-scale": scale},
    el("legend", {}, SCALE_TEXT[scale] || scale),
    el("p", {class: "ends"}, `${range[0]} = ${ends[0]} … ${range[1]} = ${ends[1]}`));
  const row = el("div", {class: "likert-row"});
  for (let v = range[0]; v <= range[1]; v++) {
    row.append(el("label", {}, el("input", {type: "radio", name: `rate-${letter}-${scale}`, value: String(v)}), String(v)));
  }
  group.append(row);
  return group;
}

function render(q) {
  body.replaceChildren();
  message.textContent = "";
  prompt.textContent = q.prompt;
  form.dataset.kind = q.kind;
  form.dataset.question = q.id;
  if (q.has_image) {
    body.append(el("div", {class: "input-image"}, picture(`${base(q.id)}/image.png`, "the picture", "The picture")));
  }
  if (q.kind === "rating") {
    const panels = el("div", {class: "panels"});
    for (const letter of q.panels) {
      const panel = el("section", {class: "panel", "data-letter": letter},
        picture(`${base(q.id)}/pictures/${letter}.png`, `explanation ${letter}`, `Explanation ${letter}`));
      for (const scale of q.scales) panel.append(likert(letter, scale, q.scale_range));
      panels.append(panel);
    }
    body.append(panels);
  } else if (q.kind === "forward") {
    if (q.panels.length) {
      const panels = el("div", {class: "panels"});
      for (const letter of q.panels) {
        panels.append(el("section", {class: "panel", "data-letter": letter},
          picture(`${base(q.id)}/pictures/${letter}.png`, "an explanation of the network's answer",
                  "What the network looked at")));
      }
      body.append(panels);
    }
    body.append(el("p", {class: "muted"}, "Guess the network's answer: it can differ from what the picture shows."));
    body.append(choices("choice", q.options));
  } else if (q.kind === "attention") {
    body.append(choices("choice", q.options));
  } else {
    body.append(el("label", {for: "comment"}, "Your comment (optional)"),
                el("textarea", {id: "comment", name: "text", rows: "5", maxlength: "2000"}));
  }
  current = q;
  nextBtn.disabled = false;
  const first = body.querySelector("input, textarea");
  if (first && q.kind !== "rating") first.focus();
}

function showProgress(state) {
  progressBar.max = state.total;
  progressBar.value = state.answered;
  if (state.question) progressText.textContent = `Question ${state.question.number} of ${state.total}`;
}

function show(state) {
  showProgress(state);
  if (state.status === "finished") {
    window.location.assign("/study");
    return;
  }
  render(state.question);
}

function collect(q) {
  if (q.kind === "rating") {
    const ratings = {};
    for (const letter of q.panels) {
      ratings[letter] = {};
      for (const scale of q.scales) {
        const picked = form.querySelector(`input[name="rate-${letter}-${scale}"]:checked`);
        if (!picked) throw new Error(`Please rate explanation ${letter} on both questions.`);
        ratings[letter][scale] = Number(picked.value);
      }
    }
    return {ratings};
  }
  if (q.kind === "comment") {
    return {text: document.getElementById("comment").value};
  }
  const picked = form.querySelector('input[name="choice"]:checked');
  if (!picked) throw new Error("Please choose one answer.");
  return {choice: picked.value};
}

async function load() {
  try {
    show(await api("GET", "/study/api/state"));
  } catch (err) {
    message.textContent = err.detail || String(err);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!current) return;
  let answer;
  try {
    answer = collect(current);
  } catch (err) {
    message.textContent = err.message;
    return;
  }
  nextBtn.disabled = true;
  try {
    show(await api("POST", `${base(current.id)}/answer`, answer));
  } catch (err) {
    if (err.status === 409) {
      await load();  // answered meanwhile (another tab, a retry): continue from the server's state
      return;
    }
    message.textContent = err.detail || String(err);
    nextBtn.disabled = false;
  }
});

load();
