//! Sources in the build context as received: its index ([`crate::context`]'s tree) walked in
//! memory, file contents read from the spool, their digests already known.

use std::ffi::OsString;

use super::content::SpoolRange;
use super::{io_error, Attrs, Content, Node, SourceError, SourceMatch};
use crate::context::tree::{Body, Inode};
use crate::context::ContextFiles;
use crate::fsops::{self, Components};
use crate::ignore::Matcher;

fn attrs(id: usize, inode: &Inode) -> Attrs {
    let size = match inode.body {
        Body::File { size, .. } => size,
        _ => 0,
    };
    Attrs {
        mode: inode.meta.mode,
        owner: inode.meta.owner,
        mtime: inode.meta.mtime,
        size,
        // No device number is all ones: the key cannot be a real file's.
        link: (inode.links > 1).then_some((u64::MAX, id as u64)),
        stamp: None,
        xattrs: inode.meta.xattrs.clone(),
    }
}

fn visit_file<E>(
    files: &ContextFiles,
    rel: &[OsString],
    id: usize,
    inode: &Inode,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let Body::File {
        offset,
        size,
        digest,
    } = inode.body
    else {
        return Ok(());
    };
    visit(Node::File {
        rel,
        content: Content::Spool(SpoolRange {
            file: files.spool(),
            start: offset,
            len: size,
            pos: 0,
        }),
        attrs: &attrs(id, inode),
        digest: Some(digest),
    })
}

pub(super) fn walk<E: From<SourceError>>(
    files: &ContextFiles,
    m: &SourceMatch,
    excludes: &Matcher,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let tree = files.tree();
    let id = tree
        .lookup(&m.components, true)
        .map_err(io_error(&m.components))?;
    let Some(inode) = tree.inode(id) else {
        return Ok(());
    };
    let mut rel = Vec::new();
    match inode.body {
        Body::Dir(_) => walk_dir(files, id, inode, &mut rel, excludes, visit),
        Body::File { .. } => visit_file(files, &rel, id, inode, visit),
        Body::Symlink(_) => Ok(()),
    }
}

fn walk_dir<E: From<SourceError>>(
    files: &ContextFiles,
    id: usize,
    inode: &Inode,
    rel: &mut Components,
    excludes: &Matcher,
    visit: &mut dyn FnMut(Node<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let tree = files.tree();
    let dir_attrs = attrs(id, inode);
    visit(Node::Dir {
        rel,
        attrs: &dir_attrs,
    })?;
    for (name, child) in tree.names(id).into_iter().flatten() {
        let Some(child_inode) = tree.inode(child) else {
            continue;
        };
        rel.push(name.clone());
        let path = fsops::display(rel);
        let excluded = excludes.matches(&path);
        match &child_inode.body {
            Body::Dir(_) if !(excluded && excludes.can_skip_dir(&path)) => {
                walk_dir(files, child, child_inode, rel, excludes, visit)?;
            }
            _ if excluded => {}
            Body::File { .. } => visit_file(files, rel, child, child_inode, visit)?,
            Body::Symlink(target) => visit(Node::Symlink {
                rel,
                target: target.clone(),
                attrs: &attrs(child, child_inode),
            })?,
            Body::Dir(_) => {}
        }
        rel.pop();
    }
    visit(Node::DirEnd {
        rel,
        attrs: &dir_attrs,
    })
}
