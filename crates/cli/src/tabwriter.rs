//! Go's `text/tabwriter` (elastic tabstops) as docker's fork of it aligns tables: cells end
//! at a tab, a column is a run of consecutive lines that have a cell in it, every cell of a
//! column is padded to the widest (at least `minwidth`, text + `padding`), and the text after
//! the last tab of a line is not part of a column.

struct Cell {
    text: String,
    width: usize,
}

/// Aligns `text` with docker's settings for lists (`NewWriter(w, 10, 1, 3, ' ', 0)`).
pub fn tabwrite(text: &str) -> String {
    align(text, 10, 3)
}

/// Aligns `text` as `tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0)` would.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<Cell>> = text
        .split(['\n', '\u{c}'])
        .map(|l| {
            l.split(['\t', '\u{b}'])
                .map(|c| Cell {
                    text: c.to_string(),
                    width: display_width(c),
                })
                .collect()
        })
        .collect();
    let mut w = Writer {
        lines: &lines,
        minwidth,
        padding,
        widths: Vec::new(),
        out: String::new(),
    };
    w.format(0, lines.len());
    w.out
}

struct Writer<'a> {
    lines: &'a [Vec<Cell>],
    minwidth: usize,
    padding: usize,
    widths: Vec<usize>,
    out: String,
}

impl Writer<'_> {
    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            let line = &self.lines[i];
            for (j, c) in line.iter().enumerate() {
                self.out.push_str(&c.text);
                if let Some(w) = self.widths.get(j) {
                    for _ in c.width..*w {
                        self.out.push(' ');
                    }
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }

    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // a cell in this column: the start of a column block
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].width + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }
}

/// Columns a string takes in a terminal: East Asian wide characters take two, combining
/// marks none (as go-runewidth counts).
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            if (0x300..0x370).contains(&u) || u == 0x200b {
                0
            } else if (0x1100..0x1160).contains(&u)
                || (0x2e80..0xa4d0).contains(&u)
                || (0xac00..0xd7a4).contains(&u)
                || (0xf900..0xfb00).contains(&u)
                || (0xfe30..0xfe50).contains(&u)
                || (0xff00..0xff61).contains(&u)
                || (0xffe0..0xffe7).contains(&u)
                || (0x1f300..0x1f650).contains(&u)
                || (0x1f900..0x1fa00).contains(&u)
                || (0x20000..0x3fffe).contains(&u)
            {
                2
            } else {
                1
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_as_go() {
        assert_eq!(
            tabwrite("CONTAINER ID\tIMAGE\tNAMES\nabc\tbb\tx\n"),
            "CONTAINER ID   IMAGE     NAMES\nabc            bb        x\n"
        );
        // a column is a run of consecutive lines with a cell in it
        assert_eq!(
            align("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n", 0, 1),
            "aaaa bbb d\naa   b   dd\na    \naa   cccc eee\n"
        );
        assert_eq!(tabwrite("no tabs\nat all"), "no tabs\nat all");
        assert_eq!(tabwrite("日本\tx\nab\ty\n"), "日本      x\nab        y\n");
    }
}
