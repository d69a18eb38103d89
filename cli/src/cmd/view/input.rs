//! Keyboard handling: one key event becomes calls on the [`App`].
//!
//! Which keys do what depends only on the mode (list, filter bar, help), so
//! the whole key map is testable without a terminal.

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::app::{App, Mode};

/// Applies one key press to the viewer.
pub fn handle_key(app: &mut App, key: KeyEvent) {
    // Terminals with the kitty protocol also report releases and repeats.
    if key.kind == KeyEventKind::Release {
        return;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        app.quit();
        return;
    }
    match app.mode() {
        Mode::Help => app.close_help(),
        Mode::FilterInput => filter_key(app, key.code, ctrl),
        Mode::Search => search_key(app, key.code, ctrl),
        Mode::Jump => jump_key(app, key.code, ctrl),
        Mode::List => list_key(app, key.code, ctrl),
    }
}

fn jump_key(app: &mut App, code: KeyCode, ctrl: bool) {
    match code {
        KeyCode::Enter => app.jump_submit(),
        KeyCode::Esc => app.jump_cancel(),
        KeyCode::Backspace => app.jump_backspace(),
        KeyCode::Char(c) if !ctrl => app.jump_push(c),
        _ => {}
    }
}

/// The mouse: the wheel scrolls the selection, a left click selects the
/// row under it.
pub fn handle_mouse(app: &mut App, m: MouseEvent) {
    match m.kind {
        MouseEventKind::ScrollDown => app.scroll(3),
        MouseEventKind::ScrollUp => app.scroll(-3),
        MouseEventKind::Down(MouseButton::Left) => app.click(m.row),
        _ => {}
    }
}

fn search_key(app: &mut App, code: KeyCode, ctrl: bool) {
    match code {
        KeyCode::Enter => app.search_submit(),
        KeyCode::Esc => app.search_cancel(),
        KeyCode::Backspace => app.search_backspace(),
        KeyCode::Char(c) if !ctrl => app.search_push(c),
        _ => {}
    }
}

fn filter_key(app: &mut App, code: KeyCode, ctrl: bool) {
    match code {
        KeyCode::Enter => app.filter_submit(),
        KeyCode::Esc => app.filter_cancel(),
        KeyCode::Backspace if ctrl => app.filter_delete_word(),
        KeyCode::Backspace => app.filter_backspace(),
        KeyCode::Char('u') if ctrl => app.filter_clear(),
        KeyCode::Char('w') if ctrl => app.filter_delete_word(),
        KeyCode::Char(c) if !ctrl => app.filter_push(c),
        _ => {}
    }
}

fn list_key(app: &mut App, code: KeyCode, ctrl: bool) {
    match code {
        KeyCode::Char('q') => app.quit(),
        KeyCode::Down | KeyCode::Char('j') => app.down(1),
        KeyCode::Up | KeyCode::Char('k') => app.up(1),
        KeyCode::PageDown => app.page_down(),
        KeyCode::PageUp => app.page_up(),
        KeyCode::Char('f') if ctrl => app.page_down(),
        KeyCode::Char('b') if ctrl => app.page_up(),
        KeyCode::Home | KeyCode::Char('g') => app.home(),
        KeyCode::End | KeyCode::Char('G') => app.end(),
        KeyCode::Char('f') => app.open_filter(),
        KeyCode::Char('/') => app.open_search(),
        KeyCode::Char('t') => app.open_jump(),
        KeyCode::Char('o') => app.toggle_order(),
        KeyCode::Char('F') => app.toggle_follow(),
        KeyCode::Char('n') => app.search_next(true),
        KeyCode::Char('N') => app.search_next(false),
        KeyCode::Char('d') | KeyCode::Enter => app.toggle_detail(),
        KeyCode::Char('?') | KeyCode::F(1) => app.toggle_help(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::app::tests::{drop_row, ev, test_parse};
    use super::*;
    use fltpolicy_core::event::Op;

    fn press(app: &mut App, code: KeyCode) {
        handle_key(app, KeyEvent::new(code, KeyModifiers::NONE));
    }
    fn ctrl(app: &mut App, c: char) {
        handle_key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    }
    fn typed(app: &mut App, s: &str) {
        for c in s.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    fn app() -> App {
        let mut a = App::new(test_parse, None, false);
        a.append(vec![
            ev(1, 1, "/usr/bin/cat", Op::Open, "/srv/a"),
            ev(2, 2, "/usr/bin/vim", Op::Write, "/srv/b"),
            drop_row(3, 3, 4),
            ev(7, 4, "/usr/bin/cat", Op::Read, "/etc/x"),
        ]);
        a.set_page(2);
        a
    }

    #[test]
    fn list_navigation_keys() {
        let mut a = app();
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Char('j'));
        assert_eq!(a.selected(), Some(2));
        press(&mut a, KeyCode::Up);
        assert_eq!(a.selected(), Some(1));
        press(&mut a, KeyCode::End);
        assert_eq!(a.selected(), Some(3));
        press(&mut a, KeyCode::Char('g'));
        assert_eq!(a.selected(), Some(0));
        press(&mut a, KeyCode::PageDown);
        assert_eq!(a.selected(), Some(1));
        press(&mut a, KeyCode::Char('G'));
        press(&mut a, KeyCode::PageUp);
        assert_eq!(a.selected(), Some(2));
        press(&mut a, KeyCode::Home);
        press(&mut a, KeyCode::Char('n'));
        assert!(a.selected_row().unwrap().is_drop());
    }

    #[test]
    fn filter_bar_typing_applies_on_enter() {
        let mut a = app();
        press(&mut a, KeyCode::Char('f'));
        assert_eq!(a.mode(), Mode::FilterInput);
        // In the bar, list keys are text.
        typed(&mut a, r#"process == "cat" and qx"#);
        assert_eq!(a.visible_len(), 4, "nothing applied while typing");
        ctrl(&mut a, 'w');
        assert_eq!(a.filter_input(), r#"process == "cat" and "#);
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.mode(), Mode::List);
        assert_eq!(a.filter_applied(), r#"process == "cat""#);
        assert_eq!(a.visible_len(), 3);
        // `f` reopens with the applied text; Ctrl-U then Enter clears.
        press(&mut a, KeyCode::Char('f'));
        assert_eq!(a.filter_input(), r#"process == "cat""#);
        ctrl(&mut a, 'u');
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.visible_len(), 4);
    }

    #[test]
    fn filter_bar_error_then_escape() {
        let mut a = app();
        press(&mut a, KeyCode::Char('f'));
        typed(&mut a, "nonsense");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.mode(), Mode::FilterInput);
        assert!(a.filter_error().is_some());
        press(&mut a, KeyCode::Char('q'));
        assert!(!a.should_quit(), "q is text in the filter bar");
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.mode(), Mode::List);
        assert_eq!(a.visible_len(), 4);
    }

    #[test]
    fn help_toggles_and_any_key_closes() {
        let mut a = app();
        press(&mut a, KeyCode::Char('?'));
        assert_eq!(a.mode(), Mode::Help);
        press(&mut a, KeyCode::Char('q'));
        assert_eq!(a.mode(), Mode::List);
        assert!(
            !a.should_quit(),
            "the key that closes help does nothing else"
        );
        press(&mut a, KeyCode::Char('q'));
        assert!(a.should_quit());
    }

    #[test]
    fn follow_detail_and_ctrl_c() {
        let mut a = app();
        press(&mut a, KeyCode::Char('F'));
        assert!(a.follow());
        assert_eq!(a.selected(), Some(3));
        press(&mut a, KeyCode::Char('d'));
        assert!(!a.show_detail());
        press(&mut a, KeyCode::Char('/'));
        ctrl(&mut a, 'c');
        assert!(a.should_quit(), "Ctrl-C quits from any mode");
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut a = app();
        let mut k = KeyEvent::new(KeyCode::Down, KeyModifiers::NONE);
        k.kind = KeyEventKind::Release;
        handle_key(&mut a, k);
        assert_eq!(a.selected(), Some(0));
    }
}
