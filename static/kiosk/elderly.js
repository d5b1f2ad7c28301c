// Before first paint (loaded in <head>, not deferred): the large-text mode the visitor chose.
// A file, not an inline script, so the pages' Content-Security-Policy can forbid inline script.
if (document.cookie.split("; ").indexOf("kiosk_elderly=1") >= 0) document.documentElement.classList.add("elderly");
