/* Numbers, counted nouns, durations, dates, ids and server errors in the console's two languages.
 * Loaded after strings.js and before app.js; pure functions of their arguments (no DOM, no state).
 *
 * Arabic counted nouns follow Intl.PluralRules("ar"): zero, one, two, few (3–10), many (11–99), other (100…):
 * قناة واحدة، قناتان، 3 قنوات، 11 قناةً، 100 قناة. Digits stay Western, as UAE authorities write them.
 */
"use strict";

const BROADCASTER_WORDS = (() => {
  const LRI = "\u2066";
  const FSI = "\u2068";
  const PDI = "\u2069";

  /** Each noun's forms per plural category; "{n}" is the number (Western digits). */
  const NOUNS = {
    channel: {
      ar: { zero: "لا قنوات", one: "قناة واحدة", two: "قناتان", few: "{n} قنوات", many: "{n} قناةً", other: "{n} قناة" },
      en: { one: "{n} channel", other: "{n} channels" },
    },
    message: {
      ar: { zero: "لا رسائل", one: "رسالة واحدة", two: "رسالتان", few: "{n} رسائل", many: "{n} رسالةً", other: "{n} رسالة" },
      en: { one: "{n} message", other: "{n} messages" },
    },
    recipient: {
      ar: { zero: "لا مستلمين", one: "مستلم واحد", two: "مستلمان", few: "{n} مستلمين", many: "{n} مستلماً",
        other: "{n} مستلم" },
      en: { one: "{n} recipient", other: "{n} recipients" },
    },
    segment: {
      ar: { zero: "لا مقاطع", one: "مقطع واحد", two: "مقطعان", few: "{n} مقاطع", many: "{n} مقطعاً", other: "{n} مقطع" },
      en: { one: "{n} segment", other: "{n} segments" },
    },
    step: {
      ar: { zero: "لا خطوات", one: "خطوة واحدة", two: "خطوتان", few: "{n} خطوات", many: "{n} خطوةً", other: "{n} خطوة" },
      en: { one: "{n} step", other: "{n} steps" },
    },
    alert: {
      ar: { zero: "لا تنبيهات", one: "تنبيه واحد", two: "تنبيهان", few: "{n} تنبيهات", many: "{n} تنبيهاً",
        other: "{n} تنبيه" },
      en: { one: "{n} alert", other: "{n} alerts" },
    },
    upToChars: { // after حتى the noun is genitive: حتى حرفين
      ar: { zero: "بلا أحرف", one: "حتى حرف واحد", two: "حتى حرفين", few: "حتى {n} أحرف", many: "حتى {n} حرفاً",
        other: "حتى {n} حرف" },
      en: { one: "up to {n} character", other: "up to {n} characters" },
    },
    // A duration's units also have the dual after a preposition ("على مدى ساعتين"): the "twoAfter" form.
    day: {
      ar: { zero: "{n} يوم", one: "يوم واحد", two: "يومان", twoAfter: "يومين", few: "{n} أيام", many: "{n} يوماً",
        other: "{n} يوم" },
      en: { one: "{n} day", other: "{n} days" },
    },
    hour: {
      ar: { zero: "{n} ساعة", one: "ساعة واحدة", two: "ساعتان", twoAfter: "ساعتين", few: "{n} ساعات", many: "{n} ساعة",
        other: "{n} ساعة" },
      en: { one: "{n} hour", other: "{n} hours" },
    },
    minute: {
      ar: { zero: "{n} دقيقة", one: "دقيقة واحدة", two: "دقيقتان", twoAfter: "دقيقتين", few: "{n} دقائق",
        many: "{n} دقيقة", other: "{n} دقيقة" },
      en: { one: "{n} minute", other: "{n} minutes" },
    },
  };
  const RULES = { ar: new Intl.PluralRules("ar"), en: new Intl.PluralRules("en") };

  /** "3 قنوات" / "3 channels": the noun in the form its number needs (``after``: it follows a preposition). */
  function count(lang, noun, n, after = false) {
    const forms = NOUNS[noun][lang] || NOUNS[noun].en;
    const category = RULES[lang] ? RULES[lang].select(n) : "other";
    const form = (after && category === "two" && forms.twoAfter) || forms[category] || forms.other;
    return form.replace("{n}", String(n));
  }

  /**
   * A span of seconds: "60 ساعة و58 دقيقة", "ساعتان", "60 hours 58 minutes"; whole days of three or more as days
   * ("30 يوماً"); under a minute said so. ``after``: the span follows a preposition ("على مدى ساعتين").
   */
  function duration(lang, seconds, after = false) {
    const total = Math.max(0, Math.round(seconds / 60));
    if (total >= 3 * 1440 && total % 1440 === 0) return count(lang, "day", total / 1440, after);
    const h = Math.floor(total / 60);
    const m = total % 60;
    if (!h && !m) return lang === "ar" ? "أقل من دقيقة" : "under a minute";
    const parts = [];
    if (h) parts.push(count(lang, "hour", h, after));
    if (m) parts.push(count(lang, "minute", m, after));
    return lang === "ar" ? parts.join(" و") : parts.join(" ");
  }

  const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/;

  /**
   * An ISO datetime (with the authority's offset, as the server writes it) as its wall clock there:
   * dd/mm/yyyy, then 24-hour time in English, or the 12-hour time and صباحاً/مساءً in Arabic, each
   * number in a first-strong isolate so the right-to-left text round it cannot reorder it.
   */
  function dateTime(lang, iso) {
    const found = ISO.exec(iso || "");
    if (!found) return iso || "";
    const [, year, month, day, hh, mm] = found;
    const date = `${day}/${month}/${year}`;
    if (lang !== "ar") return `${date} ${hh}:${mm}`;
    const hour = Number(hh);
    return `${FSI}${date}${PDI} ${FSI}${hour % 12 || 12}:${mm}${PDI}\u00a0${hour < 12 ? "صباحاً" : "مساءً"}`;
  }

  /** An id (alert, run, template) in a left-to-right isolate: "run-20261130-…" never displays reversed. */
  const ltr = (text) => `${LRI}${text}${PDI}`;

  const ROLES = { viewer: "مشاهد", operator: "مشغّل", officer: "ضابط", approver: "مُعتمِد" };
  const ROLES_THE = { viewer: "المشاهد", operator: "المشغّل", officer: "الضابط", approver: "المُعتمِد" };

  /** Arabic for the API's "reason" (docs/api.md), with the variable's own label; null when there is none. */
  function reasonAr(error, labelOf) {
    const p = error.params || {};
    const name = error.field && error.field.startsWith("variables.") ? error.field.slice("variables.".length) : "";
    const it = name ? `«${labelOf(name)}»` : "القيمة";
    switch (error.reason) {
      case "required": {
        // params.variables lists every missing variable (older servers sent only the field).
        const names = Array.isArray(p.variables) && p.variables.length ? p.variables : (name ? [name] : []);
        const invalid = Array.isArray(p.invalid) && p.invalid.length
          ? ` وقيم غير صالحة: ${p.invalid.map((n) => `«${labelOf(n)}»`).join("، ")}.` : "";
        if (names.length > 1) return `حقول مطلوبة لم تُملأ: ${names.map((n) => `«${labelOf(n)}»`).join("، ")}.${invalid}`;
        return `${names.length ? `«${labelOf(names[0])}»` : it} مطلوب.${invalid}`;
      }
      case "invalid_values": {
        const names = Array.isArray(p.variables) ? p.variables : [];
        return `قيم غير صالحة: ${names.map((n) => `«${labelOf(n)}»`).join("، ")}.`;
      }
      case "both_languages": return `${it}: ينقصه النص ${p.language === "ar" ? "العربي" : "الإنجليزي"}؛ اكتبه باللغتين.`;
      case "too_long": return `${it} أطول من المعتمد (${count("ar", "upToChars", Number(p.max))}). اختصره؛ لا يُقتطع نص التنبيه المعتمد أبداً.`;
      case "not_a_number": return `${it} ليس رقماً (اكتب مثلاً 5.4).`;
      case "out_of_range": return `${it} خارج النطاق المعتمد: من ${FSI}${p.min}${PDI} إلى ${FSI}${p.max}${PDI}.`;
      case "not_a_choice": return `${it}: القيمة ليست من الخيارات المعتمدة لهذا القالب.`;
      case "bad_datetime": return `${it}: التاريخ والوقت غير صالحين.`;
      case "no_offset": return `${it}: ينقصه فرق التوقيت عن UTC؛ اكتبه بالشكل ${LRI}+04:00${PDI}.`;
      case "time_rule":
        if (p.rule === "future") return `${it} يجب أن يكون في المستقبل.`;
        if (p.rule === "past") return `${it} لا يجوز أن يكون في المستقبل.`;
        if (p.rule === "ahead") {
          return `${it} أبعد من ${duration("ar", Number(p.hours) * 3600, true)} من الآن؛ تحقق من التاريخ.`;
        }
        if (p.rule === "ago") return `${it} أقدم من ${duration("ar", Number(p.hours) * 3600, true)}؛ تحقق من التاريخ.`;
        if (p.rule === "after") return `${it} يجب أن يكون بعد «${labelOf(String(p.after))}».`;
        return `${it} خارج الوقت المسموح به.`;
      case "forbidden_role":
        return `دورك (${ROLES[p.role] || p.role}) لا يسمح بهذا؛ يلزم دور ${ROLES_THE[p.needs] || p.needs} أو أعلى.`;
      default: return null;
    }
  }

  const CODES_AR = {
    invalid: "رفض الخادم الطلب، ولم يُرسل شيء:",
    unauthorized: "رُفض رمز الدخول.",
    forbidden: "دورك لا يسمح بهذا الإجراء:",
    not_found: "غير موجود:",
    conflict: "لا تسمح حالة التنبيه بهذا الآن:",
    broken: "لا يمكن تنفيذ هذا الآن:",
    rate_limited: "إطلاقات كثيرة في وقت قصير؛ انتظر قليلاً ثم أعد المحاولة.",
    unavailable: "قاعدة البيانات غير متاحة؛ لم يتغير شيء. أعد المحاولة بعد قليل.",
    database_full: "قاعدة البيانات أو قرصها ممتلئ؛ لم يتغير شيء.",
    misconfigured: "إعداد الخادم لا يسمح بهذا؛ لم يُرسل شيء:",
    internal: "خطأ داخلي في الخادم؛ التفاصيل في سجل الخادم.",
  };

  /**
   * What to show for an API error: in English its message; in Arabic the translated reason, else the
   * Arabic for its code followed by the server's English detail (in an isolate), never English alone.
   */
  function explain(lang, error, labelOf = (name) => name) {
    const message = (error && error.message) || String(error);
    if (lang !== "ar" || !error || error.status === undefined) return message; // not from the server: ours already
    const translated = error && error.reason ? reasonAr(error, labelOf) : null;
    if (translated) return translated;
    const head = (error && CODES_AR[error.code]) || "تعذّر تنفيذ الطلب:";
    return head.endsWith(":") ? `${head} ${LRI}${message}${PDI}` : head;
  }

  return { count, duration, dateTime, ltr, explain, LRI, FSI, PDI };
})();
