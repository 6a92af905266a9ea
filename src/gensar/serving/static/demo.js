// The demo page: pick a user, see their history and recommendations, search.
// Clicking an item records the click through POST /events, so the next
// recommendation shows the model reading the new history.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: null, query: null, queryPosted: false };

function apiKey() {
  return $("api-key").value || localStorage.getItem("gensar-api-key") || "";
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${data.detail || "request failed"}`);
  return data;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function fill(list, rows, render) {
  list.replaceChildren(...rows.map((row) => {
    const li = document.createElement("li");
    render(li, row);
    return li;
  }));
}

function itemLine(li, item, onClick) {
  li.textContent = item.title || item.item_id;
  li.dataset.itemId = item.item_id;
  li.title = item.item_id;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = ` ${item.score.toFixed(2)}`;
  li.append(score);
  li.classList.add("clickable");
  li.addEventListener("click", onClick);
}

async function showHistory() {
  const data = await api("GET", `/users/${encodeURIComponent(state.user)}/history?limit=30`);
  const inWindow = new Set(data.window);
  $("history-count").textContent = `(${data.total} behaviours)`;
  fill($("history"), data.entries, (li, e) => {
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = `${e.behaviour} `;
    li.append(kind, e.behaviour === "search_query" ? `“${e.query}”` : (e.title || e.item_id));
    li.dataset.behaviour = e.behaviour;
    if (inWindow.has(e.seq)) li.classList.add("in-window");
  });
}

async function showRecommendations() {
  const data = await api("POST", "/recommend", { user_id: state.user, k: 10 });
  fill($("recs"), data.items, (li, item) =>
    itemLine(li, item, () => record([{ behaviour: "rec_item", item_id: item.item_id }])));
}

async function showSuggestions() {
  const data = await api("POST", "/suggest-queries", { user_id: state.user, k: 5 });
  fill($("suggestions"), data.queries, (li, q) => {
    li.textContent = q.query;
    li.classList.add("clickable");
    li.addEventListener("click", () => { $("search-input").value = q.query; search(); });
  });
}

async function loadUser(user) {
  state.user = user;
  state.query = null;
  $("results").replaceChildren();
  $("results-query").textContent = "";
  say(`Loading ${user}...`);
  try {
    await showHistory();
    await Promise.all([showRecommendations(), showSuggestions()]);
    say(`User ${user}`);
  } catch (err) {
    say(err.message, true);
  }
}

async function search() {
  const query = $("search-input").value.trim();
  if (!state.user) { say("Pick a user first", true); return; }
  try {
    const data = await api("POST", "/search", { user_id: state.user, query, k: 10 });
    state.query = data.query;
    state.queryPosted = false;
    $("results-query").textContent = `for “${data.query}”`;
    fill($("results"), data.items, (li, item) => itemLine(li, item, () => {
      const events = state.queryPosted ? [] : [{ behaviour: "search_query", query: state.query }];
      state.queryPosted = true;
      record([...events, { behaviour: "search_item", item_id: item.item_id }]);
    }));
    say(`${data.items.length} results for “${data.query}”`);
  } catch (err) {
    say(err.message, true);
  }
}

async function record(events) {
  try {
    await api("POST", "/events", { user_id: state.user, events });
    await showHistory();
    await showRecommendations();
    say(`Recorded ${events.length} behaviour(s); recommendations updated`);
  } catch (err) {
    say(err.message, true);
  }
}

async function listUsers(prefix) {
  try {
    const data = await api("GET", `/users?limit=50&prefix=${encodeURIComponent(prefix)}`);
    $("user-list").replaceChildren(...data.users.map((u) => {
      const option = document.createElement("option");
      option.value = u;
      return option;
    }));
    return data.users;
  } catch (err) {
    say(err.message, true);
    return [];
  }
}

$("user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("user-input").value.trim();
  if (user) loadUser(user);
});
$("search-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });
$("user-input").addEventListener("input", () => listUsers($("user-input").value.trim()));
$("api-key").addEventListener("change", () => {
  localStorage.setItem("gensar-api-key", $("api-key").value);
  listUsers("");
});

(async () => {
  const users = await listUsers("");
  const wanted = new URLSearchParams(location.search).get("user") || users[0];
  if (wanted) {
    $("user-input").value = wanted;
    loadUser(wanted);
  } else {
    say("No users stored yet: post behaviours to /events, or start with --dataset");
  }
})();
