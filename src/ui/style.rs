//! Look and feel shared by every screen: spacing, accent colours, and helpers for the small
//! recurring pieces (badges, copyable fields, a colour per person).

use egui::{Color32, RichText, Ui};

pub const ACCENT: Color32 = Color32::from_rgb(0x4f, 0x46, 0xe5);
pub const OK: Color32 = Color32::from_rgb(0x22, 0xa0, 0x6b);
pub const WARN: Color32 = Color32::from_rgb(0xe0, 0x8a, 0x00);
pub const DANGER: Color32 = Color32::from_rgb(0xd9, 0x3a, 0x3a);

/// Symbola (free for any use, see assets/fonts/README.md), cut down to the emoji and symbols
/// the app draws itself: egui's bundled emoji font predates 🦁 🦄 🦋 🤖, which are SAS emoji,
/// and ✓ ● come from system fonts that a machine may not have.
const SYMBOLS_FONT: &[u8] = include_bytes!("../../assets/fonts/symbola-subset.ttf");

pub fn install(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    fonts
        .font_data
        .insert("kith-symbols".into(), std::sync::Arc::new(egui::FontData::from_static(SYMBOLS_FONT)));
    for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
        // Last: only for what the other fonts lack.
        fonts.families.entry(family).or_default().push("kith-symbols".into());
    }
    ctx.set_fonts(fonts);
    ctx.all_styles_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(10.0, 5.0);
        style.interaction.selectable_labels = true;
    });
}

/// A stable, readable colour for a person, from their fingerprint.
pub fn person_color(fingerprint: &str, dark: bool) -> Color32 {
    let h = fingerprint.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let hue = (h % 360) as f32 / 360.0;
    let (s, v) = if dark { (0.55, 0.95) } else { (0.75, 0.62) };
    egui::ecolor::Hsva::new(hue, s, v, 1.0).into()
}

/// A read-only value with a copy button (addresses, fingerprints).
pub fn copy_field(ui: &mut Ui, value: &str, monospace: bool) {
    ui.horizontal(|ui| {
        let text = if monospace { RichText::new(value).monospace() } else { RichText::new(value) };
        ui.label(text);
        if ui.small_button("📋 Copy").on_hover_text("Copy to the clipboard").clicked() {
            ui.ctx().copy_text(value.to_string());
        }
    });
}

/// A rounded count badge (unread messages).
pub fn count_badge(ui: &mut Ui, n: usize) {
    let text = if n > 99 { "99+".to_string() } else { n.to_string() };
    egui::Frame::new()
        .fill(ACCENT)
        .corner_radius(8.0)
        .inner_margin(egui::Margin::symmetric(6, 1))
        .show(ui, |ui| ui.label(RichText::new(text).small().color(Color32::WHITE).strong()));
}

/// A framed, coloured box for warnings and errors.
pub fn callout<R>(ui: &mut Ui, color: Color32, add: impl FnOnce(&mut Ui) -> R) -> R {
    egui::Frame::new()
        .stroke(egui::Stroke::new(1.5, color))
        .fill(color.gamma_multiply(0.12))
        .corner_radius(6.0)
        .inner_margin(10.0)
        .show(ui, add)
        .inner
}

#[cfg(test)]
mod tests {
    use crate::core::SAS_EMOJI;

    /// Every glyph the app draws itself must exist in the fonts it ships: a missing one is an
    /// empty box, and on the verification screen that is a security problem.
    #[test]
    fn bundled_fonts_draw_every_sas_emoji_and_icon() {
        let ctx = egui::Context::default();
        super::install(&ctx);
        let mut out = ctx.run_ui(egui::RawInput::default(), |_| {});
        out.textures_delta.clear();
        let font = egui::FontId::proportional(30.0);
        let icons = ["⏱", "📞", "📹", "📋", "🛡", "⚠", "✓", "🕓", "⚙", "📨", "🏠", "🔗", "✖", "●"];
        let missing: Vec<&str> = ctx.fonts_mut(|f| {
            // U+FE0F only asks for emoji presentation; it has no glyph of its own.
            SAS_EMOJI
                .iter()
                .map(|(e, _)| *e)
                .chain(icons)
                .filter(|e| !f.has_glyphs(&font, &e.replace('\u{fe0f}', "")))
                .collect()
        });
        ctx.tex_manager().write().take_delta().clear();
        assert!(missing.is_empty(), "no glyph for {missing:?}");
    }
}
