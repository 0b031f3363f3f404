/*
 * django-verifynow phone verification widget.
 *
 * Vanilla JavaScript, no build step. Every element with [data-verifynow] becomes one
 * widget; several on a page are independent. It talks to the HTTP API of
 * django_verifynow.urls (send, validate, resend) with the CSRF token from the
 * "csrftoken" cookie, and writes the verified attempt id into a hidden input. The
 * server re-checks that id when the form is submitted: nothing here is trusted.
 */
(function () {
  "use strict";

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
    this.changeButton = q("[data-verifynow-change]");
    this.attemptInput = q("[data-verifynow-attempt]");
    this.status = q("[data-verifynow-status]");
    this.otpLength = parseInt(root.getAttribute("data-otp-length"), 10) || 6;
    this.purpose = root.getAttribute("data-purpose") || "verify";
    var messagesEl = document.getElementById(root.getAttribute("data-messages"));
    this.messages = messagesEl ? JSON.parse(messagesEl.textContent) : {};
    this.attempt = null;       // the attempt JSON of the current code
    this.verifiedFor = null;   // the number (as typed) that was verified
    this.resendAt = 0;         // epoch ms when resend becomes allowed
    this.blockedUntil = 0;     // epoch ms until which "Send code" waits (429/503)
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

  Widget.prototype.url = function (kind, id) {
    var url = this.root.getAttribute("data-url-" + kind);
    if (id) url = url.replace(this.root.getAttribute("data-url-placeholder"), id);
    return url;
  };

  Widget.prototype.say = function (text, kind) {
    this.status.textContent = text;
    this.status.className = "verifynow__status" + (kind ? " verifynow__status--" + kind : "");
    this.root.setAttribute("data-state", kind || "info");
  };

  /* The number in the form VerifyNow needs: +<calling code><digits>. */
  Widget.prototype.e164 = function () {
    var raw = (this.phone.value || "").trim();
    if (!raw) return "";
    var digits = raw.replace(/[^0-9]/g, "");
    if (raw.charAt(0) === "+") return "+" + digits;
    if (digits.substring(0, 2) === "00") return "+" + digits.substring(2);
    if (this.country) {
      var label = this.country.options[this.country.selectedIndex].text;
      var cc = (label.match(/\+(\d+)/) || [])[1];
      // libphonenumber drops a national trunk prefix (the UK's leading 0) after +cc.
      if (cc) return "+" + cc + digits;
    }
    return "+" + digits;
  };

  Widget.prototype.phoneKey = function () {
    return (this.country ? this.country.value : "") + "|" + this.e164();
  };

  Widget.prototype.bind = function () {
    var self = this;
    this.sendButton.addEventListener("click", function () { self.send(); });
    this.verifyButton.addEventListener("click", function () { self.verify(); });
    this.resendButton.addEventListener("click", function () { self.resend(); });
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
      }
    };
    this.phone.addEventListener("input", changed);
    if (this.country) this.country.addEventListener("change", changed);
  };

  Widget.prototype.request = function (url, body) {
    var self = this;
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRFToken": csrfToken(self.root),
        "X-Requested-With": "XMLHttpRequest"
      },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      var serverDate = Date.parse(response.headers.get("Date") || "");
      // Server minus client clock, so countdowns follow the server's timestamps.
      self.skew = isNaN(serverDate) ? 0 : serverDate - Date.now();
      return response.json().catch(function () { return {}; }).then(function (data) {
        var retry = parseInt(response.headers.get("Retry-After") || "", 10);
        if (data && data.retry_after === undefined && !isNaN(retry)) data.retry_after = retry;
        return { ok: response.ok, status: response.status, data: data || {} };
      });
    });
  };

  Widget.prototype.setBusy = function (busy) {
    this.busy = busy;
    this.root.setAttribute("aria-busy", busy ? "true" : "false");
    this.sendButton.disabled = busy || Date.now() < this.blockedUntil;
    this.verifyButton.disabled = busy;
  };

  Widget.prototype.send = function () {
    if (this.busy) return;
    if (Date.now() < this.blockedUntil) return;
    var number = this.e164();
    if (!number) { this.say(this.t("enter_phone"), "error"); this.phone.focus(); return; }
    var self = this;
    this.setBusy(true);
    this.say(this.t("sending"), "info");
    this.request(this.url("send"), { phone_number: number, purpose: this.purpose })
      .then(function (result) { self.afterSend(result); })
      .catch(function () { self.say(self.t("network"), "error"); })
      .then(function () { self.setBusy(false); });
  };

  Widget.prototype.resend = function () {
    if (this.busy || !this.attempt) return;
    if (this.serverNow() < this.resendAt) return;
    var self = this;
    this.setBusy(true);
    this.resendButton.disabled = true;
    this.say(this.t("sending"), "info");
    this.request(this.url("resend", this.attempt.id), {})
      .then(function (result) { self.afterSend(result); })
      .catch(function () { self.say(self.t("network"), "error"); self.tick(); })
      .then(function () { self.setBusy(false); });
  };

  Widget.prototype.serverNow = function () { return Date.now() + (this.skew || 0); };

  Widget.prototype.afterSend = function (result) {
    if (result.ok && result.data.id) {
      this.attempt = result.data;
      this.attemptInput.value = "";
      this.verifiedFor = null;
      this.resendAt = Date.parse(result.data.resend_available_at) || 0;
      this.codeRow.hidden = false;
      this.code.value = "";
      this.code.setAttribute("maxlength", String(result.data.otp_length || this.otpLength));
      this.otpLength = result.data.otp_length || this.otpLength;
      // code_sent false: VerifyNow kept the code it had sent; no new message went out.
      var sentKey = result.data.code_sent === false ? "still_valid" : "sent";
      this.say(this.t(sentKey, { phone: result.data.phone_number }), "sent");
      this.root.setAttribute("data-state", "sent");
      this.code.focus();
      this.tick();
      return;
    }
    this.showError(result.data, "send");
    this.tick();
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
    this.say(this.t("verified", { phone: masked }), "verified");
    if (moveFocus) this.changeButton.focus();
  };

  /* Forget the attempt (and the verified state): the number must be verified again. */
  Widget.prototype.reset = function (focusPhone) {
    this.stopTimer();
    this.attempt = null;
    this.verifiedFor = null;
    this.attemptInput.value = "";
    this.root.classList.remove("verifynow--verified");
    this.root.removeAttribute("data-state");
    this.codeRow.hidden = true;
    this.code.value = "";
    this.sendButton.hidden = false;
    this.sendButton.disabled = Date.now() < this.blockedUntil;
    this.changeButton.hidden = true;
    this.say("", "");
    if (focusPhone) this.phone.focus();
  };

  Widget.prototype.showError = function (data, action) {
    var code = data && data.code;
    var wait = parseInt(data && data.retry_after, 10) || 0;
    var text;
    var kind = "error";
    if (code === "invalid_code") {
      var left = parseInt(data.attempts_left, 10) || 0;
      var counts = this.messages.wrong_code_counts || {};
      text = left > 0 ? counts[left] || this.t("wrong_code", { n: left }) : this.t("no_attempts");
      if (left === 0) this.offerResend();
      this.code.select();
      this.code.focus();
    } else if (code === "code_expired") {
      text = this.t("expired");
      kind = "expired";
      this.offerResend();
    } else if (code === "too_many_attempts") {
      text = this.t("locked");
      this.offerResend();
    } else if (code === "rate_limited") {
      text = this.t("rate_limited", { n: wait || 60 });
      kind = "rate-limited";
      this.block(wait || 60, "rate_limited");
    } else if (code === "provider_unavailable") {
      text = this.t("unavailable", { n: wait || 30 });
      kind = "unavailable";
      this.block(wait || 30, "unavailable");
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
    this.say(text, kind);
  };

  /* A new code is the way out: make sure the resend button can be reached. */
  Widget.prototype.offerResend = function () {
    this.codeRow.hidden = false;
    this.tick();
    if (this.serverNow() >= this.resendAt) this.resendButton.focus();
  };

  Widget.prototype.block = function (seconds, key) {
    this.blockedUntil = Date.now() + seconds * 1000;
    this.blockKey = key;
    this.resendAt = Math.max(this.resendAt, this.serverNow() + seconds * 1000);
    this.sendButton.disabled = true;
    this.tick();
  };

  Widget.prototype.stopTimer = function () {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
  };

  /* One-second countdown for the resend button and a blocked "Send code". */
  Widget.prototype.tick = function () {
    this.stopTimer();
    var self = this;
    var now = Date.now();
    var again = false;
    if (this.attempt) {
      var left = Math.ceil((this.resendAt - this.serverNow()) / 1000);
      if (left > 0) {
        this.resendButton.disabled = true;
        this.resendButton.textContent = this.t("resend_in", { n: left });
        again = true;
      } else {
        this.resendButton.disabled = this.busy;
        this.resendButton.textContent = this.t("resend");
      }
    }
    if (this.blockedUntil > now) {
      var wait = Math.ceil((this.blockedUntil - now) / 1000);
      this.sendButton.disabled = true;
      this.sendButton.textContent = this.t("send") + " (" + wait + ")";
      again = true;
    } else if (this.blockedUntil) {
      this.blockedUntil = 0;
      this.sendButton.disabled = this.busy;
      this.sendButton.textContent = this.t("send");
    }
    if (again) this.timer = setTimeout(function () { self.tick(); }, 1000);
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
