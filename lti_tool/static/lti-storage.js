/* LTI client-side postMessage storage (1EdTech lti-pm-s / lti-cs-oidc).
 * Used when the LMS sends `lti_storage_target`: the tool keeps its OIDC state in the
 * platform's storage frame instead of a third-party cookie the browser may block. */
(function (global) {
  "use strict";
  var TIMEOUT_MS = 2000;

  function peer() {
    return global.opener || global.parent;
  }

  function request(win, origin, message, expectSubject) {
    return new Promise(function (resolve, reject) {
      var id = "m" + Math.random().toString(36).slice(2);
      message.message_id = id;
      var timer = setTimeout(function () {
        global.removeEventListener("message", onMessage);
        reject(new Error("timeout waiting for " + expectSubject));
      }, TIMEOUT_MS);
      function onMessage(event) {
        var data = event.data || {};
        if (data.subject !== expectSubject || data.message_id !== id) return;
        if (origin !== "*" && event.origin !== origin) return;
        clearTimeout(timer);
        global.removeEventListener("message", onMessage);
        if (data.error) reject(new Error(data.error.message || data.error.code || "error"));
        else resolve(data);
      }
      global.addEventListener("message", onMessage);
      win.postMessage(message, origin);
    });
  }

  function storageFrame(target, origin) {
    // Ask what the platform supports; the answer may name the frame that stores data.
    return request(peer(), "*", { subject: "lti.capabilities" }, "lti.capabilities.response")
      .then(function (caps) {
        var entry = (caps.supported_messages || []).filter(function (m) {
          return m.subject === "lti.put_data";
        })[0];
        if (!entry) throw new Error("platform storage not supported");
        var name = entry.frame || target;
        var frame = peer().frames[name];
        if (!frame) throw new Error("storage frame not found: " + name);
        return frame;
      });
  }

  global.LtiStorage = {
    put: function (target, origin, key, value) {
      return storageFrame(target, origin).then(function (frame) {
        return request(frame, origin,
          { subject: "lti.put_data", key: key, value: value }, "lti.put_data.response");
      });
    },
    get: function (target, origin, key) {
      return storageFrame(target, origin).then(function (frame) {
        return request(frame, origin, { subject: "lti.get_data", key: key },
          "lti.get_data.response");
      }).then(function (data) { return data.value; });
    },
  };
})(window);
