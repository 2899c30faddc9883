// The reveal game page. Everything a user typed is shown with textContent only.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const img = $("frame-img"), stepsBar = $("steps"), stepLabel = $("step-label");
  const form = $("guess-form"), text = $("text"), message = $("message");
  const guessBtn = $("guess-btn"), moreBtn = $("more-btn"), resignBtn = $("resign-btn");
  const result = $("result"), resultText = $("result-text"), nextBtn = $("next-btn");
  let round = null;
  let pendingGuess = null; // {request_id, body}: resent unchanged after a network error

  function language() {
    const tag = (navigator.language || "en").split("-");
    const lang = tag[0].toLowerCase();
    if (!/^[a-z]{2,3}$/.test(lang)) return "en";
    return tag[1] && /^[A-Za-z0-9]{2,4}$/.test(tag[1]) ? `${lang}-${tag[1]}` : lang;
  }

  function say(textValue, kind) {
    message.textContent = textValue || "";
    message.className = "message" + (kind ? " " + kind : "");
  }

  function busy(on) {
    for (const b of [guessBtn, moreBtn, resignBtn]) b.disabled = on;
    if (!on && round) moreBtn.disabled = !round.can_reveal;
  }

  function show(state) {
    round = state;
    img.src = state.image_url && state.outcome ? state.image_url : state.frame_url;
    const bars = stepsBar.children;
    for (let i = 0; i < bars.length; i++) bars[i].classList.toggle("on", i < state.step);
    stepLabel.textContent = `Step ${state.step} of ${state.steps}: ${state.percent}% of the picture shown`;
    const over = state.outcome !== null;
    form.hidden = over;
    result.hidden = !over;
    if (over) {
      const answer = state.answer ? ` It was "${state.answer}".` : "";
      if (state.outcome === "win") resultText.textContent = `You won ${state.points} points at step ${state.step}!${answer}`;
      else if (state.outcome === "loss") resultText.textContent = `Not this time.${answer}`;
      else resultText.textContent = `You resigned.${answer}`;
      nextBtn.focus();
    }
    busy(false);
  }

  function failed(err) {
    busy(false);
    say(err && err.detail ? err.detail : "Something went wrong: try again.", "error");
  }

  async function withRetry(fn, attempts = 4) {
    let wait = 400;
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (err) {
        const network = !(err instanceof ApiError) || err.status >= 502;
        if (!network || i + 1 >= attempts) throw err;
        await new Promise((r) => setTimeout(r, wait));
        wait *= 2;
      }
    }
  }

  async function newRound() {
    say("");
    busy(true);
    text.value = "";
    for (const r of form.querySelectorAll('input[name="guessed_class"]')) r.checked = false;
    try {
      show(await withRetry(() => api("POST", "/api/rounds")));
    } catch (err) {
      form.hidden = true;
      failed(err);
      result.hidden = false;
      resultText.textContent = err.detail || "No round available.";
      nextBtn.hidden = true;
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = form.querySelector('input[name="guessed_class"]:checked');
    if (!chosen) { say("Pick a class first.", "error"); return; }
    if (!text.value.trim()) { say("Type what you see.", "error"); return; }
    const body = {guessed_class: chosen.value, text: text.value, language: language(), step: round.step};
    if (!pendingGuess || JSON.stringify(pendingGuess.body) !== JSON.stringify(body)) {
      pendingGuess = {request_id: newRequestId(), body};
    }
    busy(true);
    try {
      const ack = await withRetry(() => api("POST", `/api/rounds/${round.game_id}/guesses`,
                                            Object.assign({request_id: pendingGuess.request_id}, body)));
      pendingGuess = null;
      if (!ack.outcome) {
        say("Not that one: here is a bit more of the picture.", "error");
        text.value = "";
      } else {
        say("");
      }
      show(await withRetry(() => api("GET", `/api/rounds/${round.game_id}`)));
    } catch (err) {
      failed(err);
    }
  });

  moreBtn.addEventListener("click", async () => {
    busy(true);
    say("");
    try {
      show(await withRetry(() => api("POST", `/api/rounds/${round.game_id}/reveal`, {from_step: round.step})));
    } catch (err) { failed(err); }
  });

  resignBtn.addEventListener("click", async () => {
    busy(true);
    try {
      show(await withRetry(() => api("POST", `/api/rounds/${round.game_id}/resign`)));
    } catch (err) { failed(err); }
  });

  nextBtn.addEventListener("click", newRound);
  newRound();
})();
