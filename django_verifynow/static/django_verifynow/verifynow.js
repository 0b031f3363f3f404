/*
 * django-verifynow phone verification widget.
 *
 * Vanilla JavaScript, no build step. Every element with [data-verifynow] becomes one
 * widget; several on a page are independent. It talks to the HTTP API of
 * django_verifynow.urls (send, validate, resend) with the CSRF token from the
 * "csrftoken" cookie, and writes the verified attempt id into a hidden input. The
 * server re-checks that id when the form is submitted: nothing here is trusted.
 *
 * The number goes to the API as typed, with the selected country: the server parses
 * it (libphonenumber), exactly as the form's clean() does.
 */
(function () {
  "use strict";

  // Seconds before a request is given up when the root carries no data-timeout.
  var DEFAULT_TIMEOUT = 20;

  function getCookie(name) {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      if (part.substring(0, name.length + 1) === name + "=") {
        return decodeURIComponent(part.substring(name.length + 1));
      }
    }
    return null;
  }

  function csrfToken(root) {
    var token = getCookie("csrftoken");
    if (token) return token;
    // CSRF_COOKIE_HTTPONLY: fall back to the form's hidden token.
    var form = root.closest("form");
    var input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function format(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values || {}, key) ? values[key] : match;
    });
  }

  /* Whole seconds from now (epoch ms) until a deadline, rounded up. */
  function secondsUntil(deadline, now) {
    return Math.ceil((deadline - now) / 1000);
  }

  function Widget(root) {
    this.root = root;
    var q = function (sel) { return root.querySelector(sel); };
    this.phone = q("[data-verifynow-phone]");
    this.country = q("[data-verifynow-country]");
    this.sendButton = q("[data-verifynow-send]");
    this.codeRow = q("[data-verifynow-code-row]");
    this.code = q("[data-verifynow-code]");
    this.verifyButton = q("[data-verifynow-verify]");
    this.resendButton = q("[data-verifynow-resend]");
    this.switchButton = q("[data-verifynow-switch]");
    this.channelInputs = root.querySelectorAll("[data-verifynow-channel]");
    // The channels the site allows, most preferred first ("WHATSAPP SMS").
    this.channels = (root.getAttribute("data-channels") || "").split(/\s+/).filter(Boolean);
    this.changeButton = q("[data-verifynow-change]");
    this.attemptInput = q("[data-verifynow-attempt]");
    this.status = q("[data-verifynow-status]");
    this.otpLength = parseInt(root.getAttribute("data-otp-length"), 10) || 6;
    this.purpose = root.getAttribute("data-purpose") || "verify";
    var messagesEl = document.getElementById(root.getAttribute("data-messages"));
    this.messages = messagesEl ? JSON.parse(messagesEl.textContent) : {};
    this.attempt = null;       // the attempt JSON of the current code
    this.attemptKey = null;    // phoneKey() of the number the current code went to
    this.attemptState = null;  // "pending", or "expired" / "locked" once unusable
    this.verifiedFor = null;   // phoneKey() of the number that was verified
    this.resendAt = 0;         // local epoch ms when resend becomes allowed
    this.blockedUntil = 0;     // local epoch ms until which every send waits (429/503)
    this.blockKey = "";        // the message of that wait, and its kind
    this.blockKind = "";
    this.recent = null;        // {key, phone, until}: a number whose cooldown still runs
    this.sendState = "";       // what "Send code" shows: "", "sent", "recent", "blocked"
    this.reason = "";          // what the status line is about ("block", "recent", …)
    this.focusResend = false;  // move focus to "Resend code" once it can be clicked
    this.skew = 0;             // server clock minus local clock, ms
    this.timer = null;
    this.busy = false;
    this.bind();
    var verifiedPhone = root.getAttribute("data-verified-phone");
    if (verifiedPhone && this.attemptInput.value) {
      // Rendered verified by the server after it re-checked the attempt.
      this.verifiedFor = this.phoneKey();
      this.showVerified(verifiedPhone, false);
    }
  }

  Widget.prototype.t = function (key, values) {
    return format(this.messages[key] || key, values);
  };

  /* "in 30 seconds", "in 51 minutes", "in 3 hours": the plural form of each count
   * was chosen on the server (ngettext), so every language's rule holds. */
  Widget.prototype.wait = function (seconds) {
    var s = Math.max(1, Math.ceil(seconds));
    var unit = "seconds";
    var n = s;
    if (s >= 7200) { unit = "hours"; n = Math.ceil(s / 3600); }
    else if (s >= 60) { unit = "minutes"; n = Math.ceil(s / 60); }
    var table = (this.messages.wait_units || {})[unit];
    if (!table || !table.forms || !table.index || !table.index.length) return s + " s";
    var index = table.index;
    // Past the table, 100 + n % 100 has the same plural form (see widgets.py).
    var i = n < index.length ? n : (index.length > 100 ? 100 + (n % 100) : index.length - 1);
    return format(table.forms[index[i]] || table.forms[0], { n: n });
  };

  /* A channel's name for users ("WhatsApp"), from the server's translations. */
  Widget.prototype.channelName = function (channel) {
    var names = this.messages.channel_names || {};
    return names[channel] || channel || "";
  };

  /* The channel picked in the radio group, or "" (the site's order). */
  Widget.prototype.chosenChannel = function () {
    for (var i = 0; i < this.channelInputs.length; i++) {
      if (this.channelInputs[i].checked) return this.channelInputs[i].value;
    }
    return "";
  };

  /* The channel "Send by … instead" offers for the current code: the first other
   * channel the site allows that VerifyNow did not just refuse, or "". */
  Widget.prototype.otherChannel = function () {
    var current = this.attempt && (this.attempt.channel || this.attempt.flow_type);
    var refused = this.attempt && this.attempt.fallback_from;
    for (var i = 0; i < this.channels.length; i++) {
      if (this.channels[i] !== current && this.channels[i] !== refused) return this.channels[i];
    }
    return "";
  };

  Widget.prototype.waitValues = function (seconds, extra) {
    var values = { n: Math.max(1, Math.ceil(seconds)), wait: this.wait(seconds) };
    for (var key in extra || {}) {
      if (Object.prototype.hasOwnProperty.call(extra, key)) values[key] = extra[key];
    }
    return values;
  };

  Widget.prototype.url = function (kind, id) {
    var url = this.root.getAttribute("data-url-" + kind);
    if (id) url = url.replace(this.root.getAttribute("data-url-placeholder"), id);
    return url;
  };

  Widget.prototype.say = function (text, kind, reason) {
    this.status.textContent = text;
    this.status.className = "verifynow__status" + (kind ? " verifynow__status--" + kind : "");
    this.root.setAttribute("data-state", kind || "info");
    this.reason = reason || "";
  };

  /* The country national numbers are read in: the list's, or the field's default
   * when there is no list. */
  Widget.prototype.region = function () {
    if (this.country) return this.country.value || "";
    return this.root.getAttribute("data-region") || "";
  };

  /* Which number the input holds, only to tell the same number from another one (the
   * server does the parsing): a number with + or 00 is the same in any country. */
  Widget.prototype.phoneKey = function () {
    var raw = (this.phone.value || "").trim();
    var digits = raw.replace(/[^0-9]/g, "");
    if (!digits) return "";
    if (raw.charAt(0) === "+") return "+" + digits;
    if (digits.substring(0, 2) === "00") return "+" + digits.substring(2);
    return this.region() + "|" + digits;
  };

  Widget.prototype.bind = function () {
    var self = this;
    this.sendButton.addEventListener("click", function () { self.send(); });
    this.verifyButton.addEventListener("click", function () { self.verify(); });
    this.resendButton.addEventListener("click", function () { self.resend(); });
    if (this.switchButton) {
      this.switchButton.addEventListener("click", function () {
        self.resend(self.switchButton.getAttribute("data-channel"));
      });
    }
    this.changeButton.addEventListener("click", function () { self.reset(true); });
    // Enter in our inputs acts on the widget instead of submitting the whole form.
    this.phone.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); self.send(); }
    });
    this.code.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); self.verify(); }
    });
    this.code.addEventListener("input", function () {
      var clean = self.code.value.replace(/[^0-9]/g, "").substring(0, self.otpLength);
      if (clean !== self.code.value) self.code.value = clean;
    });
    var changed = function () {
      if (self.verifiedFor !== null && self.phoneKey() !== self.verifiedFor) {
        self.reset(false);
        self.say(self.t("changed"), "info");
      } else {
        self.tick(); // "Send code" depends on the number in the input
      }
    };
    this.phone.addEventListener("input", changed);
    if (this.country) this.country.addEventListener("change", changed);
  };

  Widget.prototype.timeoutMs = function () {
    var seconds = parseFloat(this.root.getAttribute("data-timeout"));
    return (isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_TIMEOUT) * 1000;
  };

  /* Server minus local clock, from an answer's Date header. The header has whole
   * seconds and the answer took time to come back, so the server's clock is only
   * known to about a second: a smaller difference is no evidence and the local clock
   * is kept (otherwise a 30 s cooldown would start at 31). */
  Widget.prototype.measureSkew = function (header, started, received) {
    var serverDate = Date.parse(header || "");
    if (isNaN(serverDate)) return;
    var skew = serverDate + 500 - (started + received) / 2;
    var uncertainty = 1000 + (received - started) / 2;
    this.skew = Math.abs(skew) <= uncertainty ? 0 : skew;
  };

  /* A server timestamp as local epoch ms (0 when missing). */
  Widget.prototype.toLocal = function (timestamp) {
    var t = Date.parse(timestamp || "");
    return isNaN(t) ? 0 : t - this.skew;
  };

  Widget.prototype.request = function (url, body) {
    var self = this;
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var started = Date.now();
    var timer = null;
    // Without an answer in time the request is aborted: the buttons must not stay
    // disabled for as long as the browser would wait.
    var expired = new Promise(function (resolve, reject) {
      timer = setTimeout(function () {
        if (controller) controller.abort();
        reject(new Error("timeout"));
      }, self.timeoutMs());
    });
    var call = fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": csrfToken(self.root),
        "X-Requested-With": "XMLHttpRequest"
      },
      body: JSON.stringify(body || {}),
      signal: controller ? controller.signal : undefined
    }).then(function (response) {
      self.measureSkew(response.headers.get("Date"), started, Date.now());
      return response.json().catch(function (error) {
        if (error && error.name === "AbortError") throw error;
        return {};
      }).then(function (data) {
        var retry = parseInt(response.headers.get("Retry-After") || "", 10);
        if (data && data.retry_after === undefined && !isNaN(retry)) data.retry_after = retry;
        return { ok: response.ok, status: response.status, data: data || {} };
      });
    });
    return Promise.race([call, expired]).then(
      function (result) { clearTimeout(timer); return result; },
      function (error) { clearTimeout(timer); throw error; }
    );
  };

  Widget.prototype.setBusy = function (busy) {
    this.busy = busy;
    this.root.setAttribute("aria-busy", busy ? "true" : "false");
    this.verifyButton.disabled = busy;
    // Every button follows the flag, "Resend code" too: an answer that offers a resend
    // is handled while its request still counts as busy.
    this.tick();
  };

  Widget.prototype.send = function () {
    if (this.busy) return;
    var now = Date.now();
    this.tick(); // the state of "Send code" for the number in the input now
    if (this.sendState === "blocked") {
      var left = secondsUntil(this.blockedUntil, now);
      this.say(this.t(this.blockKey, this.waitValues(left)), this.blockKind, "block");
      return;
    }
    var typed = (this.phone.value || "").trim();
    if (!typed) { this.say(this.t("enter_phone"), "error"); this.phone.focus(); return; }
    if (this.sendState === "sent") { this.remind(now); return; }
    if (this.sendState === "recent") { this.sayRecent(now); return; }
    var key = this.phoneKey();
    var body = { phone_number: typed, purpose: this.purpose };
    var region = this.region();
    if (region) body.country = region;
    var channel = this.chosenChannel();
    if (channel) body.channel = channel;
    var self = this;
    this.setBusy(true);
    this.say(this.t("sending"), "info");
    this.request(this.url("send"), body)
      .then(function (result) { self.afterSend(result, key); })
      .catch(function () { self.say(self.t("network"), "error"); })
      .then(function () { self.setBusy(false); });
  };

  /* Asked to send again to the number a code just went to: no request (it would only
   * be refused); say where the code is and when a new one can be requested. */
  Widget.prototype.remind = function (now) {
    if (this.attemptState === "expired" || this.attemptState === "locked") {
      this.say(this.t(this.attemptState), this.attemptState === "expired" ? "expired" : "error");
      this.offerResend();
      return;
    }
    var phone = this.attempt.phone_number;
    var left = secondsUntil(this.resendAt, now);
    if (left > 0) {
      this.say(this.t("on_its_way", this.waitValues(left, { phone: phone })), "sent", "sent");
    } else {
      this.say(this.t("on_its_way_resend", { phone: phone }), "sent", "sent");
    }
    this.code.focus();
  };

  Widget.prototype.sayRecent = function (now) {
    var left = secondsUntil(this.recent.until, now);
    this.say(this.t("just_sent", this.waitValues(left, { phone: this.recent.phone })), "info", "recent");
  };

  /* A new code for the same number: on the channel that delivered the last one, or
   * on ``channel`` ("Send by SMS instead"). */
  Widget.prototype.resend = function (channel) {
    if (this.busy || !this.attempt) return;
    if (Date.now() < this.resendAt) return;
    var self = this;
    this.setBusy(true);
    this.say(this.t("sending"), "info");
    this.request(this.url("resend", this.attempt.id), channel ? { channel: channel } : {})
      .then(function (result) { self.afterSend(result); })
      .catch(function () { self.say(self.t("network"), "error"); })
      .then(function () { self.setBusy(false); });
  };

  /* The answer to a send (key: the number it was for) or a resend (same number). */
  Widget.prototype.afterSend = function (result, key) {
    if (result.ok && result.data.id) {
      this.attempt = result.data;
      if (key !== undefined) this.attemptKey = key;
      this.attemptState = "pending";
      this.recent = null;
      this.attemptInput.value = "";
      this.verifiedFor = null;
      this.resendAt = this.toLocal(result.data.resend_available_at);
      this.codeRow.hidden = false;
      this.code.value = "";
      this.code.setAttribute("maxlength", String(result.data.otp_length || this.otpLength));
      this.otpLength = result.data.otp_length || this.otpLength;
      // code_sent false: VerifyNow kept the code it had sent; no new message went out.
      // fallback_from: VerifyNow refused that channel, the code went out on the next.
      var sentKey = result.data.code_sent === false ? "still_valid" :
        (result.data.fallback_from ? "sent_fallback" : "sent");
      this.say(this.t(sentKey, {
        phone: result.data.phone_number,
        channel: this.channelName(result.data.channel || result.data.flow_type),
        refused: this.channelName(result.data.fallback_from)
      }), "sent", "sent");
      this.code.focus();
      this.tick();
      return;
    }
    this.showError(result.data, "send");
  };

  Widget.prototype.verify = function () {
    if (this.busy) return;
    if (!this.attempt) { this.send(); return; }
    var code = (this.code.value || "").replace(/\s+/g, "");
    if (code.length !== this.otpLength || /[^0-9]/.test(code)) {
      this.say(this.t("enter_code", { n: this.otpLength }), "error");
      this.code.focus();
      return;
    }
    var self = this;
    this.setBusy(true);
    this.say(this.t("verifying"), "info");
    this.request(this.url("validate", this.attempt.id), { code: code })
      .then(function (result) {
        if (result.ok && result.data.status === "verified") {
          self.attempt = result.data;
          self.resendAt = self.toLocal(result.data.resend_available_at) || self.resendAt;
          self.attemptInput.value = result.data.id;
          self.verifiedFor = self.phoneKey();
          self.showVerified(result.data.phone_number, true);
        } else {
          self.showError(result.data, "validate");
        }
      })
      .catch(function () { self.say(self.t("network"), "error"); })
      .then(function () { self.setBusy(false); });
  };

  Widget.prototype.showVerified = function (masked, moveFocus) {
    this.stopTimer();
    this.root.classList.add("verifynow--verified");
    this.codeRow.hidden = true;
    this.sendButton.hidden = true;
    this.changeButton.hidden = false;
    this.hideFieldErrors();
    this.say(this.t("verified", { phone: masked }), "verified", "verified");
    if (moveFocus) this.changeButton.focus();
  };

  /* The server's errors on this field ("Enter your phone number and verify it.") are
   * answered by the verification: hide them so they do not contradict it. They sit
   * right before or after the widget (Django's id "<input id>_error", or the
   * neighbouring ul.errorlist of a hand-written template). */
  Widget.prototype.hideFieldErrors = function () {
    var lists = [];
    var own = this.phone.id && document.getElementById(this.phone.id + "_error");
    if (own) lists.push(own);
    var neighbours = [this.root.previousElementSibling, this.root.nextElementSibling];
    for (var i = 0; i < neighbours.length; i++) {
      var el = neighbours[i];
      if (el && el.classList.contains("errorlist") && !el.classList.contains("nonfield") &&
          lists.indexOf(el) < 0) {
        lists.push(el);
      }
    }
    var described = (this.phone.getAttribute("aria-describedby") || "").split(/\s+/);
    for (var j = 0; j < lists.length; j++) {
      lists[j].hidden = true;
      var at = lists[j].id ? described.indexOf(lists[j].id) : -1;
      if (at >= 0) described.splice(at, 1);
    }
    described = described.filter(function (token) { return token; });
    if (described.length) this.phone.setAttribute("aria-describedby", described.join(" "));
    else this.phone.removeAttribute("aria-describedby");
    this.phone.removeAttribute("aria-invalid");
  };

  /* Forget the attempt (and the verified state): the number must be verified again. */
  Widget.prototype.reset = function (focusPhone) {
    this.stopTimer();
    if (this.attempt && this.attemptKey && this.resendAt > Date.now()) {
      // That number's cooldown still runs: "Send code" says so if it is asked again.
      this.recent = { key: this.attemptKey, phone: this.attempt.phone_number, until: this.resendAt };
    }
    this.attempt = null;
    this.attemptKey = null;
    this.attemptState = null;
    this.verifiedFor = null;
    this.attemptInput.value = "";
    this.root.classList.remove("verifynow--verified");
    this.root.removeAttribute("data-state");
    this.codeRow.hidden = true;
    this.code.value = "";
    this.sendButton.hidden = false;
    this.changeButton.hidden = true;
    this.sendState = "";
    this.say("", "");
    this.tick(); // may say why "Send code" waits for this number
    if (this.sendState === "blocked") {
      // A wait from before (429/503) still runs: the count-down is not left unexplained.
      var left = secondsUntil(this.blockedUntil, Date.now());
      this.say(this.t(this.blockKey, this.waitValues(left)), this.blockKind, "block");
    }
    if (focusPhone) this.phone.focus();
  };

  Widget.prototype.showError = function (data, action) {
    var code = data && data.code;
    var wait = parseInt(data && data.retry_after, 10) || 0;
    var text;
    var kind = "error";
    var reason = "";
    if (code === "invalid_code") {
      var left = parseInt(data.attempts_left, 10) || 0;
      var counts = this.messages.wrong_code_counts || {};
      text = left > 0 ? counts[left] || this.t("wrong_code", { n: left }) : this.t("no_attempts");
      this.code.select();
      this.code.focus();
      if (left === 0) { this.attemptState = "locked"; this.offerResend(); }
    } else if (code === "code_expired") {
      text = this.t("expired");
      kind = "expired";
      this.attemptState = "expired";
      this.offerResend();
    } else if (code === "too_many_attempts") {
      text = this.t("locked");
      this.attemptState = "locked";
      // Retry-After says when a new code can be sent.
      if (wait) this.resendAt = Math.max(this.resendAt, Date.now() + wait * 1000);
      this.offerResend();
    } else if (code === "rate_limited") {
      wait = wait || 60;
      kind = "rate-limited";
      reason = "block";
      text = this.t("rate_limited_wait", this.waitValues(wait));
      this.block(wait, "rate_limited_wait", kind);
    } else if (code === "provider_unavailable") {
      wait = wait || 30;
      kind = "unavailable";
      reason = "block";
      text = this.t("unavailable_wait", this.waitValues(wait));
      this.block(wait, "unavailable_wait", kind);
    } else if (code === "provider_error") {
      text = data.detail || this.t("provider_error");
    } else if (code === "not_found") {
      text = this.t("not_found");
      this.reset(false);
    } else if (data && data.fields) {
      var first = Object.keys(data.fields)[0];
      text = (data.fields[first] || [])[0] || data.detail;
    } else {
      text = (data && data.detail) || this.t("provider_error");
    }
    if (action === "send" && (code === "invalid_phone" || code === "phone_not_allowed")) {
      this.phone.focus();
    }
    this.say(text, kind, reason);
  };

  /* A new code is the way out: show "Resend code", and focus it once it can be
   * clicked (not while the request that led here still counts as busy). */
  Widget.prototype.offerResend = function () {
    this.codeRow.hidden = false;
    this.focusResend = true;
    this.tick();
  };

  Widget.prototype.block = function (seconds, key, kind) {
    this.blockedUntil = Date.now() + seconds * 1000;
    this.blockKey = key;
    this.blockKind = kind;
    this.resendAt = Math.max(this.resendAt, this.blockedUntil);
    this.tick();
  };

  Widget.prototype.stopTimer = function () {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
  };

  /* "Send code" for the number in the input: waiting (a 429/503, or the cooldown of
   * the number just verified), "Code sent" (a code went to this number: a second send
   * would only be refused), or ready. Returns the deadline it counts down to, or 0. */
  Widget.prototype.updateSend = function (now) {
    var key = this.phoneKey();
    var state = "";
    var until = 0;
    var label = this.t("send");
    if (this.blockedUntil > now) {
      state = "blocked";
      until = this.blockedUntil;
    } else if (this.attempt && this.verifiedFor === null && key && key === this.attemptKey) {
      state = "sent";
      label = this.t("code_sent");
    } else if (this.recent && this.recent.until > now && key === this.recent.key) {
      state = "recent";
      until = this.recent.until;
    }
    if (until) label = this.t("send_wait", this.waitValues(secondsUntil(until, now)));
    this.sendButton.disabled = this.busy || state !== "";
    this.sendButton.textContent = label;
    var before = this.sendState;
    this.sendState = state;
    if (state === before) return until;
    if (state === "recent") {
      this.sayRecent(now);
    } else if (before === "blocked" && this.reason === "block") {
      this.say(this.t("can_send"), "info", "");
    } else if (before === "recent" && this.reason === "recent") {
      // Over, or another number now: the status no longer applies.
      this.say(this.recent && this.recent.until <= now ? this.t("can_send") : "", "info", "");
    }
    return until;
  };

  /* "Send by SMS instead": once the cooldown is over, for a code not verified yet,
   * when the site allows another channel than the one the code went out on. */
  Widget.prototype.updateSwitch = function (now) {
    if (!this.switchButton) return;
    var other = this.attempt && this.verifiedFor === null && this.resendAt <= now ?
      this.otherChannel() : "";
    this.switchButton.hidden = !other;
    this.switchButton.disabled = this.busy || !other;
    if (other) {
      this.switchButton.setAttribute("data-channel", other);
      this.switchButton.textContent = this.t("switch", { channel: this.channelName(other) });
    }
  };

  /* Refresh both buttons, and come back when the next shown second ends. */
  Widget.prototype.tick = function () {
    this.stopTimer();
    var self = this;
    var now = Date.now();
    var deadlines = [];
    if (this.attempt && this.verifiedFor === null) {
      var left = secondsUntil(this.resendAt, now);
      if (left > 0) {
        this.resendButton.disabled = true;
        this.resendButton.textContent = this.t("resend_wait", this.waitValues(left));
        deadlines.push(this.resendAt);
      } else {
        this.resendButton.disabled = this.busy;
        this.resendButton.textContent = this.t("resend");
      }
    }
    this.updateSwitch(now);
    var until = this.updateSend(now);
    if (until) deadlines.push(until);
    // Waits that are over are forgotten (after updateSend() said so).
    if (this.blockedUntil && this.blockedUntil <= now) this.blockedUntil = 0;
    if (this.recent && this.recent.until <= now) this.recent = null;
    if (this.focusResend && !this.busy) {
      this.focusResend = false;
      if (!this.resendButton.disabled && !this.codeRow.hidden) this.resendButton.focus();
    }
    if (deadlines.length) {
      var delay = 1000;
      for (var i = 0; i < deadlines.length; i++) {
        delay = Math.min(delay, (deadlines[i] - now) % 1000 || 1000);
      }
      // Just past the boundary, so the label changes (and a button frees) on time.
      this.timer = setTimeout(function () { self.tick(); }, delay + 20);
    }
  };

  function init(scope) {
    var roots = (scope || document).querySelectorAll("[data-verifynow]");
    for (var i = 0; i < roots.length; i++) {
      if (!roots[i].verifynow) roots[i].verifynow = new Widget(roots[i]);
    }
  }

  window.VerifyNow = { init: init, Widget: Widget };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(); });
  } else {
    init();
  }
})();
