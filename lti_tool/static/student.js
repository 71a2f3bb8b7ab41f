/* Marginalia learner page: file selection, upload with progress, live status of attempts.
 *
 * Runs inside the LMS iframe where cookies may be blocked: every request carries the launch
 * token in the X-Launch-Token header. Without this script the form still posts normally.
 */
(function () {
  "use strict";

  var configEl = document.getElementById("student-config");
  if (!configEl) return;
  var config = JSON.parse(configEl.textContent);
  var S = config.strings;
  var token = config.token;

  function fmt(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) {
      return values[key] !== undefined ? String(values[key]) : "";
    });
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  var announcer = document.getElementById("announcer");
  function announce(text) {
    if (!announcer) return;
    // Clearing first makes screen readers announce a repeated message again.
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  function localizeTimes(root) {
    if (!window.Intl) return;
    var formatter;
    try {
      formatter = new Intl.DateTimeFormat(config.lang, { dateStyle: "medium", timeStyle: "short" });
    } catch (e) {
      return;
    }
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.textContent = formatter.format(when);
    });
  }

  // -- live status of attempts ---------------------------------------------------------------
  var timers = {};

  function statusText(card) {
    var title = card.querySelector("h3");
    return (title ? title.textContent + ": " : "") + (card.getAttribute("data-status-label") || "");
  }

  function poll(card, delay) {
    var id = card.id;
    window.clearTimeout(timers[id]);
    timers[id] = window.setTimeout(function () {
      var current = document.getElementById(id);
      if (!current) return;
      fetch(current.getAttribute("data-status-url"), {
        headers: {
          "X-Launch-Token": token,
          "X-Requested-With": "XMLHttpRequest",
          Accept: "application/json",
        },
        credentials: "omit",
        cache: "no-store",
      })
        .then(function (response) {
          if (!response.ok) throw new Error("status " + response.status);
          return response.json();
        })
        .then(function (body) {
          var latest = document.getElementById(id);
          if (!latest) return;
          var changed = body.submission.state !== latest.getAttribute("data-state");
          if (changed) latest = replaceCard(latest, body.html);
          watch(latest, changed ? 1500 : Math.min(delay * 1.5, 10000));
        })
        .catch(function () {
          watch(current, Math.min(delay * 2, 30000));
        });
    }, delay);
  }

  function watch(card, delay) {
    var state = card.getAttribute("data-state");
    if (card.getAttribute("data-terminal") === "true") return;
    // Review can take days: look now and then, without hammering the server.
    poll(card, state === "awaiting_review" ? 30000 : delay || 1500);
  }

  function replaceCard(old, html) {
    var hadFocus = old.contains(document.activeElement);
    var wrapper = document.createElement("ol");
    wrapper.innerHTML = html.trim();
    var card = wrapper.firstElementChild;
    old.replaceWith(card);
    localizeTimes(card);
    if (hadFocus) card.focus();
    announce(statusText(card));
    return card;
  }

  document.querySelectorAll(".attempt").forEach(function (card) { watch(card, 1500); });
  localizeTimes(document);

  // -- the answer form -------------------------------------------------------------------------
  var form = document.getElementById("answer-form");
  if (!form) return;
  var errorBox = document.getElementById("form-error");
  var fileList = document.getElementById("file-list");
  var dropzone = document.getElementById("dropzone");
  var progress = document.getElementById("progress");
  var progressBar = document.getElementById("progress-bar");
  var progressText = document.getElementById("progress-text");
  var submitButton = document.getElementById("submit-button");
  var inputs = Array.prototype.slice.call(form.querySelectorAll("input[type=file]"));
  var accepts = {};
  inputs.forEach(function (input) { accepts[input.getAttribute("data-kind")] = true; });
  var selected = []; // [{file, kind, url}]

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    errorBox.focus();
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  function kindOf(file) {
    // A hint for the list only: the server decides the type from the file's content.
    if (/^image\//.test(file.type) || /\.(png|jpe?g|webp)$/i.test(file.name)) return "image";
    if (/^video\//.test(file.type) || /\.(mp4|webm|mov)$/i.test(file.name)) return "video";
    return null;
  }

  function addFiles(files) {
    clearError();
    Array.prototype.forEach.call(files, function (file) {
      var kind = kindOf(file);
      if (!kind || !accepts[kind]) {
        showError(fmt(S.notAccepted, { name: file.name }));
        return;
      }
      if (file.size > config.limits.maxBytes) {
        showError(fmt(S.tooBig, { name: file.name, limit: formatSize(config.limits.maxBytes) }));
        return;
      }
      var count = selected.filter(function (s) { return s.kind === kind; }).length;
      if (kind === "image" && count >= config.limits.maxImages) {
        showError(S.tooManyImages);
        return;
      }
      if (kind === "video" && count >= 1) {
        showError(S.oneVideo);
        return;
      }
      selected.push({
        file: file,
        kind: kind,
        url: kind === "image" && window.URL ? URL.createObjectURL(file) : null,
      });
    });
    renderFiles();
  }

  function renderFiles() {
    if (!fileList) return;
    fileList.innerHTML = "";
    selected.forEach(function (item, index) {
      var li = document.createElement("li");
      if (item.url) {
        var img = document.createElement("img");
        img.src = item.url;
        img.alt = "";
        li.appendChild(img);
      } else {
        var icon = document.createElement("span");
        icon.className = "file-icon";
        icon.setAttribute("aria-hidden", "true");
        icon.textContent = "▶";
        li.appendChild(icon);
      }
      var name = document.createElement("span");
      name.className = "file-name";
      name.textContent = item.file.name + " · " + formatSize(item.file.size);
      li.appendChild(name);
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link-button";
      remove.textContent = S.removeShort;
      remove.setAttribute("aria-label", fmt(S.remove, { name: item.file.name }));
      remove.addEventListener("click", function () {
        if (item.url) URL.revokeObjectURL(item.url);
        selected.splice(index, 1);
        renderFiles();
        var next = fileList.querySelector("button") || inputs[0];
        if (next) next.focus();
      });
      li.appendChild(remove);
      fileList.appendChild(li);
    });
  }

  inputs.forEach(function (input) {
    input.addEventListener("change", function () {
      addFiles(input.files);
      input.value = ""; // the page keeps its own list; choosing the same file again works
      if (selected.length) announce(fmt(S.filesSelected, { n: selected.length }));
    });
  });

  if (dropzone) {
    ["dragenter", "dragover"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) {
        event.preventDefault();
        dropzone.classList.add("dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (type) {
      dropzone.addEventListener(type, function (event) {
        event.preventDefault();
        dropzone.classList.remove("dragging");
      });
    });
    dropzone.addEventListener("drop", function (event) {
      if (event.dataTransfer && event.dataTransfer.files) addFiles(event.dataTransfer.files);
    });
  }

  function setBusy(busy) {
    submitButton.disabled = busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
    progress.hidden = !busy;
    if (!busy) {
      progressBar.value = 0;
      progressText.textContent = "";
    }
  }

  function resetForm() {
    var text = form.querySelector("textarea");
    if (text) text.value = "";
    selected.forEach(function (item) { if (item.url) URL.revokeObjectURL(item.url); });
    selected = [];
    renderFiles();
  }

  function onSubmitted(body) {
    var list = document.getElementById("attempt-list");
    document.getElementById("no-attempts").hidden = true;
    list.querySelectorAll(".attempt.current").forEach(function (el) {
      el.classList.remove("current");
    });
    var wrapper = document.createElement("ol");
    wrapper.innerHTML = body.html.trim();
    var card = wrapper.firstElementChild;
    list.insertBefore(card, list.firstChild);
    localizeTimes(card);
    document.getElementById("attempts-label").textContent = body.attempts.label;
    resetForm();
    if (!body.attempts.can_submit) {
      form.hidden = true;
      document.getElementById("no-more-attempts").hidden = false;
    }
    card.focus();
    announce(S.submitted + " " + statusText(card));
    watch(card, 1500);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearError();
    var text = form.querySelector("textarea");
    if ((!text || !text.value.trim()) && !selected.length) {
      showError(S.empty);
      if (text) text.focus();
      return;
    }
    var data = new FormData();
    data.append("lt", token);
    if (text) data.append("answer_text", text.value);
    selected.forEach(function (item) {
      data.append(item.kind === "image" ? "images" : "video", item.file, item.file.name);
    });

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action"));
    xhr.setRequestHeader("X-Launch-Token", token);
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.withCredentials = false;
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      var percent = Math.round((e.loaded / e.total) * 100);
      progressBar.value = percent;
      progressText.textContent = percent < 100 ? fmt(S.uploading, { p: percent }) : S.processingUpload;
    });
    xhr.addEventListener("load", function () {
      setBusy(false);
      var body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch (e) {
        body = null;
      }
      if (xhr.status === 201 && body) {
        onSubmitted(body);
      } else {
        showError((body && body.message) || S.network);
      }
    });
    xhr.addEventListener("error", function () {
      setBusy(false);
      showError(S.network);
    });
    setBusy(true);
    announce(fmt(S.uploading, { p: 0 }));
    xhr.send(data);
  });
})();
